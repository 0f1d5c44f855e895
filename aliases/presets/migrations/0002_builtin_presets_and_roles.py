"""The built-in presets, and the role groups given the preset permissions (config/accounts/roles.py)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# Read-only starting points; editors duplicate one to make their own. Every value is inside the alias bounds.
BUILTIN_PRESETS = [
    {
        "name": "precise",
        "description": "Focused, repeatable answers: low temperature, narrow sampling.",
        "temperature": 0.2,
        "top_p": 0.5,
    },
    {
        "name": "balanced",
        "description": "A general-purpose default for chat.",
        "temperature": 0.7,
        "top_p": 0.9,
    },
    {
        "name": "creative",
        "description": "More varied writing: high temperature, wide sampling, fewer repeats.",
        "temperature": 1.2,
        "top_p": 0.95,
        "frequency_penalty": 0.5,
        "presence_penalty": 0.5,
    },
    {
        "name": "long-context",
        "description": "A 32k-token window that keeps the whole prompt when the context shifts.",
        "n_ctx": 32768,
        "n_keep": -1,
        "n_predict": -1,
    },
]


def add_builtins(apps, schema_editor):
    Preset = apps.get_model("presets", "Preset")
    for values in BUILTIN_PRESETS:
        Preset.objects.update_or_create(name=values["name"], builtin=True, defaults=values)


def remove_builtins(apps, schema_editor):
    apps.get_model("presets", "Preset").objects.filter(builtin=True).delete()


def sync_roles(apps, schema_editor):
    # Permissions are normally made after all migrations ran; make them now so the groups can hold the preset ones.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    from config.accounts.roles import sync_role_groups

    sync_role_groups()


class Migration(migrations.Migration):
    dependencies = [
        ("presets", "0001_initial"),
        ("accounts", "0005_verify_modelfile_role"),
    ]

    operations = [
        migrations.RunPython(add_builtins, remove_builtins),
        migrations.RunPython(sync_roles, migrations.RunPython.noop),
    ]
