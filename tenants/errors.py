"""Domain errors of tenant services; commands and views turn them into messages."""


class TenantError(Exception):
    """Base class: the message is shown to the operator as it is."""


class InvalidSlug(TenantError):
    pass


class InvalidDomain(TenantError):
    pass


class TenantExists(TenantError):
    pass


class DomainTaken(TenantError):
    pass


class TenantNotFound(TenantError):
    pass


class PlanNotFound(TenantError):
    pass


class DomainNotFound(TenantError):
    pass


class ConfirmationRequired(TenantError):
    pass


class ProvisioningFailed(TenantError):
    pass


class InvalidText(TenantError):
    """A value that cannot be stored as given (PostgreSQL text holds no NUL)."""


class DomainVerificationFailed(TenantError):
    """Ownership of a domain could not be proven (yet): the message says what was
    looked up and what was found."""
