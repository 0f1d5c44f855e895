"""The embedded default's on-disk broker, with messages that appear whole.

kombu's filesystem transport creates a message's file and then writes it, while a worker polling the folder may
move and read the file in between: it reads an empty message, and the worker stops with "Unrecoverable error:
JSONDecodeError" (seen in the browser journeys, where pulls are queued while a worker is polling). Here the
message is written under a name the reader skips and renamed into place, which is atomic on one file system.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # The reader takes only "<stamp>.<queue>.msg": a name starting with a dot ends in ".part" for it.
        partial = os.path.join(self.data_folder_out, f".{name}.part")
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
