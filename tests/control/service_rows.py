"""Rows for service-key tests: spaces, users with tokens, and a service with its own token."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from sqlalchemy.orm import Session

from control.access import Role, Scope
from control.secrets import new_token, token_hash
from control.store import models as m
from control.store import repo
from control.users import create_user, issue_token, set_member


@dataclass
class Tenancy:
    service_id: int
    service_token: str
    reader: str
    """A read-scope token of a viewer of the service's space."""
    writer: str
    """A write-scope token of a member of the service's space."""
    stranger: str
    """A token of an owner of another space only."""


def tenancy(app: FastAPI, *, public: bool = False, space: str = "alpha") -> Tenancy:
    """Spaces `space` and `beta`, three users, and a service in `space` (with a key hash: public or not)."""
    with app.state.orchestrator.store.transaction() as ses:
        home, _ = repo.ensure_space(session=ses, name=space)
        other, _ = repo.ensure_space(session=ses, name="beta")
        tokens = []
        for name, where, role, scope in (
            ("vera", home, Role.VIEWER, Scope.READ),
            ("mona", home, Role.MEMBER, Scope.WRITE),
            ("otto", other, Role.OWNER, Scope.ADMIN),
        ):
            user = create_user(ses, name)
            set_member(ses, where, user, role)
            tokens.append(issue_token(ses, user, "cli", scope=scope, expires_at=None).secret)
        svc, token = service_row(ses, home.id, "tabular", key_hash=token_hash(new_token()), public=public)
        return Tenancy(svc.id, token, *tokens)


def service_row(
    ses: Session, space_id: int, model_name: str, *, key_hash: str | None, public: bool = False
) -> tuple[m.Service, str]:
    """A model with one version and a service `{model_name}-1` serving it; (service, service token)."""
    model = m.Model(space_id=space_id, model_name=model_name)
    ses.add(model)
    ses.flush()
    version = m.ModelVersion(model_id=model.id, model_version="1", model_address="file:///m.tar.gz")
    ses.add(version)
    ses.flush()
    token = new_token()
    svc = m.Service(
        space_id=space_id,
        service_name=f"{model_name}-1",
        model_id=model.id,
        model_version_id=version.id,
        serving_object="op:Reasoner",
        token_hash=token_hash(token),
        api_key_hash=key_hash,
        public=public,
    )
    ses.add(svc)
    ses.flush()
    return svc, token
