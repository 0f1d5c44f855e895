"""The four roles of DESIGN.md as Django groups.

Each role is a group holding the permissions in ROLE_PERMISSIONS; the data migrations keep the groups in step.
A user's role is the highest group they belong to (superusers are admins).
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

VIEWER, OPERATOR, EDITOR, ADMIN = "viewer", "operator", "editor", "admin"
ROLES = (VIEWER, OPERATOR, EDITOR, ADMIN)

READ = ["aliases.view_alias", "modelfiles.view_modelfile", "modelfiles.view_download", "presets.view_preset"]
# Parameter presets are written by those who write aliases (DESIGN.md: "presets" is an editor's and an admin's).
PRESET_WRITE = ["presets.add_preset", "presets.change_preset", "presets.delete_preset"]
PULL = [
    "modelfiles.request_download",
    "modelfiles.cancel_download",
    "modelfiles.retry_download",
    "modelfiles.pause_download",
    "modelfiles.rescan_cache",
    "modelfiles.verify_modelfile",
]
ROLE_PERMISSIONS: dict[str, list[str]] = {
    VIEWER: READ,
    OPERATOR: [*READ, *PULL],
    EDITOR: [*READ, "aliases.add_alias", "aliases.change_alias", "aliases.delete_alias", *PRESET_WRITE],
    ADMIN: [
        *READ,
        *PULL,
        "modelfiles.delete_modelfile",
        "aliases.add_alias",
        "aliases.change_alias",
        "aliases.delete_alias",
        *PRESET_WRITE,
        "auth.view_user",
        "auth.add_user",
        "auth.change_user",
        "auth.delete_user",
        "auth.view_group",
        "accounts.view_apitoken",
        "accounts.delete_apitoken",
        "audit.view_auditentry",
    ],
}


def role_of(user: AbstractBaseUser | AnonymousUser) -> str | None:
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return ADMIN
    names = {group.name for group in user.groups.all()}
    for role in reversed(ROLES):
        if role in names:
            return role
    return VIEWER


def sync_role_groups() -> None:
    """Make the four role groups hold exactly the permissions above (the migrations do this on install;
    this repairs a database whose groups were deleted or emptied)."""
    from django.contrib.auth.models import Group, Permission

    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for name in names:
            app_label, codename = name.split(".")
            wanted.extend(Permission.objects.filter(content_type__app_label=app_label, codename=codename))
        group.permissions.set(wanted)


def sync_roles_in_migration(apps, schema_editor) -> None:
    """A data migration's step that gives the roles a permission added in that migration.

    Permissions are normally made after all migrations ran; they are made here first, so the groups can hold
    the new one. The role table lives in code (ROLE_PERMISSIONS above)."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    sync_role_groups()
