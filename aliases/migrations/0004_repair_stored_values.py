"""Repair aliases stored before every value was checked whole (issue 7).

A value that breaks the rules only by surrounding whitespace (a trailing newline passed the old `$` check) is
stripped when what is left is valid and, for a name, not taken by another alias (names ignore case). Nothing
else is changed: `manage.py check` (aliases.W001) lists what is left for an admin to decide.
"""

from django.core.exceptions import ValidationError
from django.db import migrations

from aliases.validators import (
    model_alias_name_ok,
    validate_alias_name,
    validate_chat_template,
    validate_filename,
    validate_no_control_characters,
    validate_repo,
    validate_snapshot,
)


def _valid(validator, value):
    try:
        validator(value)
    except ValidationError:
        return False
    return True


def _name_ok(source):
    if source == "model":
        return model_alias_name_ok
    return lambda value: _valid(validate_alias_name, value)


def repair(apps, schema_editor):
    Alias = apps.get_model("aliases", "Alias")
    field_rules = {
        "repo": validate_repo,
        "filename": validate_filename,
        "snapshot": validate_snapshot,
        "chat_template": validate_chat_template,
        "user": validate_no_control_characters,
    }
    taken = {name.lower() for name in Alias.objects.values_list("alias", flat=True)}
    for alias in Alias.objects.order_by("pk"):
        changed = {}
        name_ok = _name_ok(alias.source)
        if not name_ok(alias.alias):
            stripped = alias.alias.strip()
            if stripped and name_ok(stripped) and stripped.lower() not in taken:
                taken.discard(alias.alias.lower())
                taken.add(stripped.lower())
                changed["alias"] = stripped
        for field, validator in field_rules.items():
            value = getattr(alias, field)
            if not _valid(validator, value):
                stripped = value.strip()
                if _valid(validator, stripped) and (stripped or field == "user"):
                    changed[field] = stripped
        if changed:
            # update(): no auto_now, no version bump; the values are what the editor meant all along.
            Alias.objects.filter(pk=alias.pk).update(**changed)


class Migration(migrations.Migration):
    dependencies = [
        ("aliases", "0003_user_refuses_control_characters"),
    ]

    operations = [migrations.RunPython(repair, migrations.RunPython.noop)]
