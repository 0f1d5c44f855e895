"""Give the roles their model-file and download permissions (DESIGN.md, "Roles and permissions")."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

READ = ["modelfiles.view_modelfile", "modelfiles.view_download"]
PULL = [
    "modelfiles.request_download",
    "modelfiles.cancel_download",
    "modelfiles.retry_download",
    "modelfiles.rescan_cache",
]
ADDED = {
    "viewer": READ,
    "operator": READ + PULL,
    "editor": READ,
    "admin": READ + PULL + ["modelfiles.delete_modelfile"],
}


def add_permissions(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, names in ADDED.items():
        group, _ = Group.objects.get_or_create(name=role)
        for name in names:
            app_label, codename = name.split(".")
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def remove_permissions(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, names in ADDED.items():
        group = Group.objects.filter(name=role).first()
        if group is None:
            continue
        for name in names:
            app_label, codename = name.split(".")
            group.permissions.remove(*Permission.objects.filter(content_type__app_label=app_label, codename=codename))


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_roles"),
        ("modelfiles", "0001_initial"),
    ]

    operations = [migrations.RunPython(add_permissions, remove_permissions)]
