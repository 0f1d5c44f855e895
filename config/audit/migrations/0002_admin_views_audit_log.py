"""Let the admin role read the audit log (DESIGN.md, "Roles and permissions": audit log is for admins)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def sync_roles(apps, schema_editor):
    # Permissions are normally made after all migrations ran; make them now so the admin group can hold
    # audit.view_auditentry. The role table itself lives in code (config/accounts/roles.py), so the groups are
    # brought in step with it rather than with a copy frozen here.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    from config.accounts.roles import sync_role_groups

    sync_role_groups()


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        ("accounts", "0003_modelfile_roles"),
    ]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
