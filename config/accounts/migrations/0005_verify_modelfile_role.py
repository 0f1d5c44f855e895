"""Operators and admins may verify model files (DESIGN.md, "Roles and permissions": verify)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def sync_roles(apps, schema_editor):
    # Permissions are normally made after all migrations ran; make them now so the groups can hold
    # modelfiles.verify_modelfile. The role table lives in code (config/accounts/roles.py).
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    from config.accounts.roles import sync_role_groups

    sync_role_groups()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_token_expiry_and_bearer_failures"),
        ("audit", "0002_admin_views_audit_log"),
        ("modelfiles", "0006_verification_and_update_check"),
    ]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
