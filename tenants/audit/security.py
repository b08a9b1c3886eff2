"""Security events Django raises, recorded in the audit trail: failed logins, users
created, changed or deleted, group and permission changes (Django's and Wagtail's
per-page and per-collection ones), in any tenant's schema.

These are signal receivers on purpose: users and permissions change through Wagtail's
admin, Django's own commands and the shell, and signals are the one place all of
them pass. Password hashes never enter an entry; a new password is noted as such.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_login_failed
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from tenants.audit.trail import Actor, record_audit

USER_FIELDS = (
    "username",
    "email",
    "first_name",
    "last_name",
    "is_active",
    "is_staff",
    "is_superuser",
)


def _user_state(user) -> dict:
    return {field: getattr(user, field, None) for field in USER_FIELDS}


def _login_failed(sender, credentials=None, request=None, **kwargs) -> None:
    username = str((credentials or {}).get("username", ""))[:150]
    if request is None:
        actor = Actor.system("login")
    else:
        source = "api" if request.path.startswith("/api/") else "login"
        actor = Actor.anonymous_from(request, source=source)
    record_audit(
        action="login.failed",
        actor=actor,
        target=f"user {username}",
        after={"username": username},
    )


def _user_pre_save(sender, instance, raw=False, **kwargs) -> None:
    if raw or instance.pk is None:
        instance._audit_before = None
        return
    old = sender._default_manager.filter(pk=instance.pk).first()
    instance._audit_before = (
        None if old is None else {**_user_state(old), "_password": old.password}
    )


def _user_saved(sender, instance, created=False, raw=False, **kwargs) -> None:
    if raw:
        return
    before = getattr(instance, "_audit_before", None)
    after = _user_state(instance)
    target = f"user {instance.get_username()}"
    if created or before is None:
        record_audit(action="user.created", target=target, after=after)
        return
    old_password = before.pop("_password")
    if before != after:
        record_audit(action="user.changed", target=target, before=before, after=after)
    if old_password != instance.password:
        record_audit(action="user.password_changed", target=target)


def _user_deleted(sender, instance, **kwargs) -> None:
    record_audit(
        action="user.deleted",
        target=f"user {instance.get_username()}",
        before=_user_state(instance),
    )


def _names(model, pks) -> list[str]:
    if not pks:
        return []
    if model is Group:
        return sorted(Group.objects.filter(pk__in=pks).values_list("name", flat=True))
    if model._meta.model_name == "permission":
        return sorted(
            f"{app}.{codename}"
            for app, codename in model.objects.filter(pk__in=pks).values_list(
                "content_type__app_label", "codename"
            )
        )
    return sorted(str(pk) for pk in pks)


def _membership_changed(
    sender, instance, action, reverse, model, pk_set, **kwargs
) -> None:
    if action not in {"post_add", "post_remove", "post_clear"}:
        return
    if isinstance(instance, Group):
        target = f"group {instance.name}"
    else:
        target = f"user {instance.get_username()}"
    relation = sender._meta.model_name
    record_audit(
        action=f"permissions.{action.removeprefix('post_')}",
        target=target,
        after={"relation": relation, "items": _names(model, pk_set)},
    )


def _group_saved(sender, instance, created=False, raw=False, **kwargs) -> None:
    if not raw:
        record_audit(
            action="group.created" if created else "group.changed",
            target=f"group {instance.name}",
        )


def _group_deleted(sender, instance, **kwargs) -> None:
    record_audit(action="group.deleted", target=f"group {instance.name}")


def _object_permission(instance) -> tuple[str, dict]:
    """Wagtail's per-page and per-collection permissions of a group."""
    where = "page" if hasattr(instance, "page_id") else "collection"
    state = {
        "group": instance.group.name,
        where: getattr(instance, f"{where}_id"),
        "permission": instance.permission.codename,
    }
    return f"group {instance.group.name}", state


def _object_permission_saved(sender, instance, created=False, raw=False, **kwargs):
    if raw:
        return
    target, state = _object_permission(instance)
    action = "permissions.object_added" if created else "permissions.object_changed"
    record_audit(action=action, target=target, after=state)


def _object_permission_deleted(sender, instance, **kwargs) -> None:
    try:
        target, state = _object_permission(instance)
    except Group.DoesNotExist:  # the group itself is being deleted (recorded)
        return
    record_audit(action="permissions.object_removed", target=target, before=state)


def connect_security_signals() -> None:
    user_model = get_user_model()
    user_login_failed.connect(_login_failed, dispatch_uid="audit.login_failed")
    pre_save.connect(_user_pre_save, sender=user_model, dispatch_uid="audit.user.pre")
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="audit.user.save")
    post_delete.connect(
        _user_deleted, sender=user_model, dispatch_uid="audit.user.delete"
    )
    post_save.connect(_group_saved, sender=Group, dispatch_uid="audit.group.save")
    post_delete.connect(_group_deleted, sender=Group, dispatch_uid="audit.group.del")
    from wagtail.models import GroupCollectionPermission, GroupPagePermission

    for model in (GroupPagePermission, GroupCollectionPermission):
        label = model._meta.label
        post_save.connect(
            _object_permission_saved, sender=model, dispatch_uid=f"audit.{label}.save"
        )
        post_delete.connect(
            _object_permission_deleted, sender=model, dispatch_uid=f"audit.{label}.del"
        )
    for through in (
        user_model.groups.through,
        user_model.user_permissions.through,
        Group.permissions.through,
    ):
        m2m_changed.connect(
            _membership_changed,
            sender=through,
            dispatch_uid=f"audit.m2m.{through._meta.label}",
        )
