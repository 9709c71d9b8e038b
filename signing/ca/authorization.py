"""Who may ask for a subscriber's certificates: the subscriber's managing body (Decree 68/2024).

Requests for a subscriber are submitted by its managing body, a body with legal personality and
its own seal. A caller acting for agency ``A`` may request for a subscriber managed by ``B`` when
``A`` is ``B`` or one of ``B``'s parent bodies in the agency-code hierarchy:

* QCVN 102 codes ``LLL.MM.NN.XDD`` read level 1 on the right: ``000.00.00.H29`` (TP. Hồ Chí Minh)
  is a parent of ``000.00.31.H29`` and of ``000.12.31.H29``; ``00`` / ``000`` groups are "not
  below this level".
* Decision 20/2020 codes read level 1 on the left: ``H55`` is a parent of ``H55.242``.

Codes of the two forms are never parents of each other. Province jurisdiction and scopes are the
server's business; this module decides only the agency relation.
"""

from __future__ import annotations

from signing.errors import NotPermitted
from vnid.agency import AgencyCodeForm, agency_code_form
from vnid.errors import VnidError

__all__ = ["NotManagingBody", "is_parent_or_same", "require_managing_body"]


class NotManagingBody(NotPermitted):
    """The caller is not the managing body of the certificate it acts on."""
    reason = "NOT_MANAGING_BODY"


def _form(code: str) -> AgencyCodeForm | None:
    try:
        return agency_code_form(code)
    except VnidError:
        return None


def is_parent_or_same(actor: str, subscriber_body: str) -> bool:
    """Whether agency ``actor`` is ``subscriber_body`` or one of its parent bodies."""
    if actor == subscriber_body:
        return True
    form = _form(actor)
    if form is None or form != _form(subscriber_body):
        return False
    if form is AgencyCodeForm.QD20:
        return subscriber_body.startswith(actor + ".")
    # QCVN 102: groups from level 4 (left) to level 1 (right). The actor's non-zero groups must
    # be a right-aligned run that matches, with only zero groups to its left.
    a = actor.split(".")
    b = subscriber_body.split(".")
    levels_a = [g for g in a[:3]]
    i = 0
    while i < 3 and set(levels_a[i]) == {"0"}:
        i += 1
    return a[3] == b[3] and a[i:3] == b[i:3] and any(set(g) != {"0"} for g in b[:i])


def require_managing_body(actor: str, subscriber_body: str) -> None:
    """Raise :class:`NotManagingBody` unless ``actor`` may request for ``subscriber_body``."""
    if not is_parent_or_same(actor, subscriber_body):
        raise NotManagingBody("the caller is not the managing body of this subscriber")
