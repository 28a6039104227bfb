from django.apps import AppConfig


class OrgsConfig(AppConfig):
    name = "orgs"
    verbose_name = "Organizations and keys"

    def ready(self) -> None:
        from core.audit import audit_backend_register

        from . import signals  # noqa: F401
        from .services import audit_organization, audit_record

        # Apps below orgs (the catalog) audit through core.audit; the rows land in orgs' AuditLog.
        audit_backend_register(writer=audit_record, organization_of=audit_organization)
