"""Inference keys of services: made at deploy, stored as sha256, shown once, rotatable.

A serving process admits a request when the service is public, when it carries the service's
key, or when it carries a user token that may read the service's space (`check_token`, asked
by the serving process with its service token and cached there briefly).
"""

from __future__ import annotations

import secrets

from sqlalchemy.orm import Session

from control.access import Need, allow, auth_required, authenticate
from control.errors import ControlError, Forbidden, NotFound, Unauthorized
from control.schemas.service_keys import ServiceAccess, TokenVerdict
from control.secrets import token_hash
from control.settings import Settings
from control.store import models as m

#: service keys start with this, so a leaked one is recognisable (and told apart from user tokens)
KEY_PREFIX = "atomsk_"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def set_new_key(svc: m.Service) -> str:
    """Give `svc` a new key (the former stops opening it); returns the key, which is not stored."""
    key = new_key()
    svc.api_key_hash = token_hash(key)
    return key


def get_service(ses: Session, service_id: int) -> m.Service:
    svc = ses.get(m.Service, service_id)
    if svc is None:
        raise NotFound(f"service {service_id} does not exist")
    return svc


def access_of(ses: Session, settings: Settings, svc: m.Service) -> ServiceAccess:
    """What the serving process of `svc` needs to admit callers."""
    return ServiceAccess(
        public=svc.public,
        key_hashes=[svc.api_key_hash] if svc.api_key_hash else [],
        anonymous=not auth_required(ses, settings),
    )


def check_token(ses: Session, settings: Settings, svc: m.Service, token: str) -> TokenVerdict:
    """Whether `token` (a user's) may call `svc`: reading the service's space is enough."""
    try:
        who = authenticate(ses, settings, token)
        allow(
            ses,
            who,
            svc.space_id,
            Need.READ,
            f"service {svc.service_name}: not in a space {who.name} can read",
        )
    except (Unauthorized, Forbidden, NotFound) as exc:
        status = 401 if isinstance(exc, Unauthorized) else 403
        return TokenVerdict(allowed=False, status=status, reason=str(exc))
    except ControlError as exc:  # pragma: no cover - any other refusal is still a refusal
        return TokenVerdict(allowed=False, status=403, reason=str(exc))
    return TokenVerdict(allowed=True)
