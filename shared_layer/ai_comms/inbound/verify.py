"""Who a Twilio request is from: the tenant its company address names, proven by its signature.

Every request Twilio makes to the engine (an incoming message, a delivery status) goes through the
same checks, in this order: the company address routes to a project on this channel; the signature
matches the tenant's secret; the AccountSid is the one that secret names. Each failure is the same
403, so a caller learns nothing about which numbers or tenants exist.

Which secret signed the request, the header decides (twilio's ``request_validator``, the SDK's
definition of the scheme): without ``X-Twilio-Webhooks-Signature-Settings`` it is the account's auth
token with HMAC-SHA1; with it (``key=<signing key sid>,algorithm=<HMAC_SHA1|HMAC_SHA256>``) it is the
tenant's webhook signing key, kept in their Twilio secret as ``webhook_signing_key`` (and, to pin
one key, ``webhook_signing_key_sid``). A signature that does not match the cached secret is checked
once more against the secret as stored now: a token rotated in Secrets Manager is accepted at once,
never answered 403 until caches expire.
"""

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger

from ai_comms.config import ChannelRuntime, Settings
from ai_comms.errors import Forbidden, RetryLater
from ai_comms.masking import mask_address
from ai_comms.models.tenant import AddressRoute, ProjectConfig
from ai_comms.providers.secrets import SecretUnavailable, get_secret_json
from ai_comms.providers.twilio_signature import FormParams, is_valid_signature
from ai_comms.store.tenants import TenantRepository
from ai_comms.ttl_cache import TtlCache

logger = Logger(child=True)

SETTINGS_HEADER = "x-twilio-webhooks-signature-settings"
NOT_AUTHENTICATED = "request not authenticated"


def signing_key_sid(settings_header: str) -> str | None:
    for part in settings_header.split(","):
        name, separator, value = part.partition("=")
        if separator and name.strip() == "key":
            return value.strip() or None
    return None


def signing_secret(secret: Mapping[str, Any], settings_header: str | None) -> str:
    """The secret the request says it was signed with; empty when the tenant has none of that kind."""
    if not settings_header:
        return str(secret.get("auth_token") or "")
    pinned = secret.get("webhook_signing_key_sid")
    if pinned and signing_key_sid(settings_header) != pinned:
        return ""
    return str(secret.get("webhook_signing_key") or "")


class TwilioRequests:
    def __init__(self, settings: Settings, tenants: TenantRepository) -> None:
        self._settings = settings
        self._tenants = tenants
        self._routes: TtlCache[str, AddressRoute | None] = TtlCache(settings.tenant_cache_seconds)
        self._projects: TtlCache[tuple[str, str], ProjectConfig | None] = TtlCache(
            settings.tenant_cache_seconds
        )

    def project_for(self, company_address: str, channel: ChannelRuntime) -> ProjectConfig:
        route = self._routes.get_or_load(company_address, lambda: self._tenants.find_route(company_address))
        if route is None or route.channel != channel.name:
            logger.warning("no tenant for address", extra={"address": mask_address(company_address)})
            raise Forbidden(NOT_AUTHENTICATED)
        key = (route.company_id, route.project_id)
        project = self._projects.get_or_load(key, lambda: self._tenants.get_project(*key))
        if project is None or project.channel(channel.name) is None:
            logger.warning(
                "address routes to a missing project", extra={"address": mask_address(company_address)}
            )
            raise Forbidden(NOT_AUTHENTICATED)
        return project

    def verify(
        self,
        project: ProjectConfig,
        channel: ChannelRuntime,
        url: str,
        headers: Mapping[str, str],
        params: FormParams,
    ) -> None:
        """The signature with the secret the headers name, then the AccountSid that secret names."""
        reference = project.channels[channel.name].twilio_secret_ref
        signature = headers.get("x-twilio-signature", "")
        settings_header = headers.get(SETTINGS_HEADER)
        for fresh in (False, True):
            try:
                secret = get_secret_json(reference, self._settings.secret_cache_seconds, force_fetch=fresh)
            except SecretUnavailable as error:
                logger.error("twilio secret unavailable", extra={"project_id": project.project_id})
                raise RetryLater("credentials unavailable") from error
            key = signing_secret(secret, settings_header)
            if key and is_valid_signature(key, url, params, signature, settings_header):
                break
        else:
            logger.warning(
                "signature rejected",
                extra={"project_id": project.project_id, "signing_key": bool(settings_header)},
            )
            raise Forbidden(NOT_AUTHENTICATED)
        account_sid = secret.get("account_sid")
        if account_sid and params.first("AccountSid") != account_sid:
            logger.warning("account sid does not match the tenant", extra={"project_id": project.project_id})
            raise Forbidden(NOT_AUTHENTICATED)
