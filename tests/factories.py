from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from aliases.models import Alias
from config.accounts.roles import VIEWER
from config.accounts.services import _apply_role

TEST_PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", TEST_PASSWORD)

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        self.save()
        if create:
            # Test data, not a change anyone made: set the role without an audit entry, so tests that count
            # entries see only the ones their own actions recorded.
            _apply_role(user=self, role=extracted or VIEWER)


class AliasFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Alias

    alias = factory.Sequence(lambda n: f"model-{n:03d}")
    repo = factory.Sequence(lambda n: f"owner{n % 3}/repo-{n}-GGUF")
    filename = factory.Sequence(lambda n: f"model-{n}.Q4_K_M.gguf")
    snapshot = "main"
    chat_template = "embedded"
