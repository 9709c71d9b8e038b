"""``vnegov.identity.v1.IdentityService``: converts protobuf to domain objects and back, checks the
caller's provinces, and calls :mod:`vnid`. Mutations with a ``request_id`` are idempotent (AIP-155)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from server.auth.caller import ALL_PROVINCES, Caller
from server.errors import InvalidArgument, PermissionDenied
from server.identity.state import ClientDirectory
from server.identity.store import SqlStore
from server.modules import AppContext
from server.rpc.filtering import parse_filter
from server.rpc.paging import decode_page_token, encode_page_token, page_size, query_digest
from server.rpc.state import current_caller
from server.storage.identity import IdempotencyRow
from vnegov.identity.v1 import identity_pb2 as pb
from vnegov.identity.v1 import identity_pb2_grpc
from vnid.account_admin import AccountAdmin
from vnid.accounts import (
    Account,
    AccountKind,
    AccountStatus,
    EvidenceType,
    ProofingMethod,
    ProofingRecord,
)
from vnid.authn.device import DeviceKey
from vnid.errors import FailedPrecondition, NotFound
from vnid.oidc.claims import release_claims
from vnid.oidc.ports import ChipEvidenceRecord
from vnid.oidc.provider import OpenIDProvider
from vnid.oidc.userinfo import chip_claims
from vnid.personal_id import Sex
from vnid.proofing import ChipProofing

__all__ = ["IdentityServicer"]

M = TypeVar("M", bound=Message)

_KINDS = {AccountKind.CITIZEN: pb.CITIZEN, AccountKind.FOREIGN_RESIDENT: pb.FOREIGN_RESIDENT,
          AccountKind.ORGANISATION: pb.ORGANISATION}
_KINDS_BACK = {v: k for k, v in _KINDS.items()}
_STATUS = {AccountStatus.ACTIVE: pb.ACTIVE, AccountStatus.LOCKED: pb.LOCKED,
           AccountStatus.EXPIRED: pb.EXPIRED}
_SEX = {Sex.MALE: pb.MALE, Sex.FEMALE: pb.FEMALE}
_SEX_BACK = {v: k for k, v in _SEX.items()}
_SERVICE = "/vnegov.identity.v1.IdentityService/"


def _ts(value: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value.astimezone(dt.UTC))
    return ts


def _date(text: str, field: str) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(f"{field} must be YYYY-MM-DD", metadata={"field": field}) from None


def _peek_challenge(statement: str) -> str:
    """The challenge id a chip submission names (read before its signature is checked, only to
    find the account and the device key that must have signed it)."""
    import base64
    import json

    parts = statement.split(".")
    if len(parts) != 3:
        return ""
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return ""
    value = payload.get("challenge") if isinstance(payload, dict) else None
    return value if isinstance(value, str) and len(value) <= 64 else ""


def _account_id(name: str, field: str = "name") -> str:
    parts = name.split("/")
    if len(parts) < 2 or parts[0] != "accounts" or not parts[1]:
        raise InvalidArgument(f"{field} must be accounts/{{account_id}}", metadata={"field": field})
    return parts[1]


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, ctx: AppContext, provider: OpenIDProvider, admin: AccountAdmin,
                 clients: ClientDirectory, store: SqlStore,
                 chip: ChipProofing | None = None) -> None:
        self.ctx = ctx
        self.chip = chip
        self.provider = provider
        self.admin = admin
        self.clients = clients
        self.store = store  # the provider's store: admin operations join its transactions

    # ------------------------------------------------------------------ helpers
    def _account_pb(self, a: Account) -> pb.Account:
        now = self.ctx.clock()
        msg = pb.Account(
            name=f"accounts/{a.account_id}", kind=_KINDS[a.kind], identifier=a.identifier,
            full_name=a.full_name,
            date_of_birth=a.date_of_birth.isoformat() if a.date_of_birth else "",
            sex=_SEX.get(a.sex, pb.SEX_UNSPECIFIED) if a.sex else pb.SEX_UNSPECIFIED,
            nationality=a.nationality, level=pb.AssuranceLevel.ValueType(int(a.level)),
            status=_STATUS[a.status_at(now)],
            locked_reason=a.locked_reason,
            card_valid_until=a.card_valid_until.isoformat() if a.card_valid_until else "",
            province_code=a.province_code, create_time=_ts(a.created_at))
        if a.proofing is not None:
            p = a.proofing
            msg.proofing.CopyFrom(pb.ProofingRecord(
                evidence_type=p.evidence_type.value, method=p.method.value, place=p.place,
                officer=p.officer, proof_time=_ts(p.proofed_at),
                evidence_valid_until=p.evidence_valid_until.isoformat()
                if p.evidence_valid_until else ""))
        return msg

    @staticmethod
    def _device_pb(d: DeviceKey) -> pb.Device:
        return pb.Device(name=f"accounts/{d.account_id}/devices/{d.device_id}", label=d.label,
                         jkt=d.jkt, register_time=_ts(d.registered_at),
                         revoke_time=_ts(d.revoked_at), active=d.active)

    @staticmethod
    def _require(caller: Caller, province_code: str) -> None:
        """National accounts (no province) are for national callers only."""
        caller.require_province(province_code or ALL_PROVINCES)

    def _visible(self, caller: Caller, account_id: str) -> Account:
        """The account, if the caller may act on it; PERMISSION_DENIED otherwise, and also for a
        missing account when the caller is not national (so nothing leaks about existence)."""
        try:
            account = self.admin.get(account_id)
        except NotFound:
            if not caller.may_act_in(ALL_PROVINCES):
                raise PermissionDenied("the caller may not act on this account",
                                       reason="OUT_OF_JURISDICTION") from None
            raise
        self._require(caller, account.province_code)
        return account

    async def _idempotent(self, method: str, request: Any, response_type: type[M],
                          work: Callable[[], M]) -> M:
        request_id = getattr(request, "request_id", "")
        if not request_id:
            return await self.ctx.run(work)
        if not 8 <= len(request_id) <= 64:
            raise InvalidArgument("request_id must have 8-64 characters",
                                  metadata={"field": "request_id"})
        caller = current_caller().audit_name[:200]
        digest = hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()
        store = self.store
        key = (IdempotencyRow.caller == caller, IdempotencyRow.request_id == request_id)

        def run() -> M:
            # One transaction for the claim, the work (whose own transactions join this one) and
            # the stored answer: a retry either finds the answer or finds nothing, never a
            # request that died half way. A concurrent retry waits for the write lock (or, on
            # PostgreSQL, for the claim row) and then reads the answer.
            with store.transaction(request_id=request_id, actor=caller) as tx:
                row = tx.s.execute(select(
                    IdempotencyRow.method, IdempotencyRow.request_digest,
                    IdempotencyRow.response).where(*key)).first()
                if row is not None:
                    if row.method != method or row.request_digest != digest:
                        raise InvalidArgument("request_id was used for a different request",
                                              reason="REQUEST_ID_REUSED",
                                              metadata={"field": "request_id"})
                    return response_type.FromString(bytes(row.response))
                tx.s.execute(insert(IdempotencyRow).values(
                    caller=caller, request_id=request_id, method=method,
                    request_digest=digest, response=b"", created_at=self.ctx.clock()))
                result = work()
                tx.s.execute(update(IdempotencyRow).where(*key)
                             .values(response=result.SerializeToString()))
                return result

        try:
            return await self.ctx.run(run)
        except IntegrityError:
            # PostgreSQL: a concurrent first attempt inserted the claim and committed meanwhile.
            return await self.ctx.run(run)

    # ------------------------------------------------------------------ tokens and profiles
    async def IntrospectToken(self, request: pb.IntrospectTokenRequest,
                              context: grpc.aio.ServicerContext) -> pb.TokenInfo:
        info = await self.ctx.run(self.provider.describe_token, request.token, self.ctx.clock())
        if not info.get("active"):
            return pb.TokenInfo(active=False)
        return pb.TokenInfo(
            active=True, client_id=info["client_id"], subject=info.get("sub", ""),
            scopes=info["scope"].split(), token_type=info["token_type"],
            expire_time=_ts(dt.datetime.fromtimestamp(info["exp"], dt.UTC)),
            issue_time=_ts(dt.datetime.fromtimestamp(info["iat"], dt.UTC)),
            acr=info.get("acr", ""), amr=info.get("amr", []),
            jkt=info.get("cnf", {}).get("jkt", ""))

    async def GetCitizenProfile(self, request: pb.GetCitizenProfileRequest,
                                context: grpc.aio.ServicerContext) -> pb.CitizenProfile:
        caller = current_caller()
        client = self.clients.get(request.client_id)
        if client is None or client.agency_code != caller.agency_code:
            raise PermissionDenied("the caller does not act for this client",
                                   reason="NOT_CLIENT_AGENCY")

        def lookup() -> pb.CitizenProfile:
            with self.provider.core.store.transaction() as tx:
                account_id = tx.account_for_subject(client.client_id, request.subject)
                account = tx.account(account_id) if account_id else None
                consents = tx.consents(account_id) if account_id else []
                chip = chip_claims(tx, account_id) if account_id else None
            granted = [(scopes, at) for cid, scopes, at in consents if cid == client.client_id]
            if account is None or not granted:
                raise NotFound("no consented profile for this subject",
                               reason="PROFILE_NOT_FOUND")
            scopes, at = granted[0]
            claims = release_claims(account, client.claim_profile, scopes,
                                    self.provider.settings.account_type_codes, chip)
            return pb.CitizenProfile(
                client_id=client.client_id, subject=request.subject,
                level=pb.AssuranceLevel.ValueType(int(account.level)),
                consented_scopes=sorted(scopes),
                claims={k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                        for k, v in claims.items()},
                consent_time=_ts(at))

        return await self.ctx.run(lookup)

    # ------------------------------------------------------------------ chip proofing
    def _chip(self) -> ChipProofing:
        if self.chip is None:
            raise FailedPrecondition("chip proofing is not configured here (identity.chip)",
                                     reason="CHIP_PROOFING_DISABLED")
        return self.chip

    @staticmethod
    def _evidence_pb(r: ChipEvidenceRecord) -> pb.ChipEvidence:
        return pb.ChipEvidence(
            evidence_id=r.evidence_id, verify_time=_ts(r.verified_at), genuineness=r.genuineness,
            strength=r.strength, ds_fingerprint=r.ds_fingerprint, csca_subject=r.csca_subject,
            data_group_hashes=dict(r.data_group_hashes), claims=dict(r.claims),
            face_match_reported_by_app=r.face_match, level_raised=r.level_raised,
            status=r.status, status_reason=r.status_reason)

    async def CreateChipChallenge(self, request: pb.CreateChipChallengeRequest,
                                  context: grpc.aio.ServicerContext) -> pb.ChipChallenge:
        caller = current_caller()
        chip = self._chip()
        account_id = _account_id(request.name)
        await self.ctx.run(self._visible, caller, account_id)
        challenge = await self.ctx.run(chip.create_challenge, account_id, self.ctx.clock(),
                                       actor=caller.audit_name)
        return pb.ChipChallenge(challenge_id=challenge.challenge_id, nonce=challenge.nonce,
                                expire_time=_ts(challenge.expires_at))

    async def SubmitChipProofing(self, request: pb.SubmitChipProofingRequest,
                                 context: grpc.aio.ServicerContext) -> pb.ChipProofingResult:
        caller = current_caller()
        chip = self._chip()

        def work() -> pb.ChipProofingResult:
            # The caller must be allowed to act on the account the challenge was issued for.
            claims = _peek_challenge(request.statement)
            with self.store.reader() as tx:
                challenge = tx.chip_challenge(claims) if claims else None
            if challenge is None:
                raise FailedPrecondition("unknown challenge", reason="CHIP_CHALLENGE_UNKNOWN")
            self._visible(caller, challenge.account_id)
            account, record = chip.submit(request.statement, self.ctx.clock(),
                                          actor=caller.audit_name)
            return pb.ChipProofingResult(account=self._account_pb(account),
                                         evidence=self._evidence_pb(record))

        return await self.ctx.run(work)

    async def ListChipEvidence(self, request: pb.ListChipEvidenceRequest,
                               context: grpc.aio.ServicerContext) -> pb.ListChipEvidenceResponse:
        caller = current_caller()
        chip = self._chip()
        account_id = _account_id(request.name)
        await self.ctx.run(self._visible, caller, account_id)
        records = await self.ctx.run(chip.evidence, account_id)
        return pb.ListChipEvidenceResponse(evidence=[self._evidence_pb(r) for r in records])

    # ------------------------------------------------------------------ accounts
    async def CreateAccount(self, request: pb.CreateAccountRequest,
                            context: grpc.aio.ServicerContext) -> pb.Account:
        caller = current_caller()
        self._require(caller, request.province_code)
        kind = _KINDS_BACK.get(request.kind)
        if kind is None:
            raise InvalidArgument("kind is required", metadata={"field": "kind"})
        dob = _date(request.date_of_birth, "date_of_birth")
        sex = _SEX_BACK.get(request.sex)

        def work() -> pb.Account:
            account = self.admin.create(
                kind=kind, identifier=request.identifier, full_name=request.full_name,
                now=self.ctx.clock(), date_of_birth=dob, sex=sex,
                nationality=request.nationality or "VN", province_code=request.province_code,
                guardian_request=request.guardian_request,
                residence_card=request.residence_card, actor=caller.audit_name)
            return self._account_pb(account)

        return await self._idempotent(_SERVICE + "CreateAccount", request, pb.Account, work)

    async def GetAccount(self, request: pb.GetAccountRequest,
                         context: grpc.aio.ServicerContext) -> pb.Account:
        caller = current_caller()
        account_id = _account_id(request.name)
        account = await self.ctx.run(self._visible, caller, account_id)
        return self._account_pb(account)

    async def ListAccounts(self, request: pb.ListAccountsRequest,
                           context: grpc.aio.ServicerContext) -> pb.ListAccountsResponse:
        caller = current_caller()
        filters = {c.field: c for c in parse_filter(request.filter,
                                                    {"kind", "level", "province_code"})}
        if any(c.op != "=" for c in filters.values()):
            raise InvalidArgument("only = is supported in this filter", reason="INVALID_FILTER",
                                  metadata={"field": "filter"})
        province = filters["province_code"].value if "province_code" in filters else ""
        if not caller.may_act_in(ALL_PROVINCES):
            if not province:
                if len(caller.provinces) != 1:
                    raise InvalidArgument("filter by province_code", reason="INVALID_FILTER",
                                          metadata={"field": "filter"})
                province = next(iter(caller.provinces))
            caller.require_province(province)
        kind = filters["kind"].value if "kind" in filters else ""
        level = 0
        if "level" in filters:
            if filters["level"].value not in ("1", "2"):
                raise InvalidArgument("level must be 1 or 2", reason="INVALID_FILTER",
                                      metadata={"field": "filter"})
            level = int(filters["level"].value)
        size = page_size(request.page_size)
        digest = query_digest("ListAccounts", request.filter, province)
        after = (decode_page_token(request.page_token, digest) or b"").decode()
        accounts = await self.ctx.run(self.admin.list_accounts, after=after, limit=size + 1,
                                      kind=kind, level=level, province_code=province)
        response = pb.ListAccountsResponse(accounts=[self._account_pb(a) for a in
                                                     accounts[:size]])
        if len(accounts) > size:
            response.next_page_token = encode_page_token(
                accounts[size - 1].account_id.encode(), digest)
        return response

    async def RecordProofing(self, request: pb.RecordProofingRequest,
                             context: grpc.aio.ServicerContext) -> pb.Account:
        caller = current_caller()
        account_id = _account_id(request.name)
        await self.ctx.run(self._visible, caller, account_id)
        p = request.proofing
        try:
            record = ProofingRecord(
                evidence_type=EvidenceType(p.evidence_type), method=ProofingMethod(p.method),
                place=p.place, officer=p.officer,
                proofed_at=p.proof_time.ToDatetime(dt.UTC) if p.HasField("proof_time")
                else self.ctx.clock(),
                evidence_valid_until=_date(p.evidence_valid_until, "evidence_valid_until"))
        except ValueError as exc:
            raise InvalidArgument(str(exc), metadata={"field": "proofing"}) from None

        def work() -> pb.Account:
            return self._account_pb(self.admin.record_proofing(
                account_id, record, self.ctx.clock(), guardian_request=request.guardian_request,
                actor=caller.audit_name))

        return await self._idempotent(_SERVICE + "RecordProofing", request, pb.Account, work)

    async def RenewIdentityCard(self, request: pb.RenewIdentityCardRequest,
                                context: grpc.aio.ServicerContext) -> pb.Account:
        caller = current_caller()
        account_id = _account_id(request.name)
        await self.ctx.run(self._visible, caller, account_id)
        until = _date(request.valid_until, "valid_until")

        def work() -> pb.Account:
            return self._account_pb(self.admin.renew_card(account_id, until, self.ctx.clock(),
                                                          actor=caller.audit_name))

        return await self._idempotent(_SERVICE + "RenewIdentityCard", request, pb.Account, work)

    async def LockAccount(self, request: pb.LockAccountRequest,
                          context: grpc.aio.ServicerContext) -> pb.Account:
        caller = current_caller()
        account_id = _account_id(request.name)
        await self.ctx.run(self._visible, caller, account_id)

        def work() -> pb.Account:
            return self._account_pb(self.admin.lock(account_id, request.reason, self.ctx.clock(),
                                                    actor=caller.audit_name))

        return await self._idempotent(_SERVICE + "LockAccount", request, pb.Account, work)

    async def UnlockAccount(self, request: pb.UnlockAccountRequest,
                            context: grpc.aio.ServicerContext) -> pb.Account:
        caller = current_caller()
        account_id = _account_id(request.name)
        await self.ctx.run(self._visible, caller, account_id)

        def work() -> pb.Account:
            return self._account_pb(self.admin.unlock(account_id, self.ctx.clock(),
                                                      actor=caller.audit_name))

        return await self._idempotent(_SERVICE + "UnlockAccount", request, pb.Account, work)

    # ------------------------------------------------------------------ devices and consents
    async def CreateDeviceEnrolment(self, request: pb.CreateDeviceEnrolmentRequest,
                                    context: grpc.aio.ServicerContext) -> pb.DeviceEnrolment:
        caller = current_caller()
        account_id = _account_id(request.parent, "parent")
        await self.ctx.run(self._visible, caller, account_id)
        now = self.ctx.clock()
        code = await self.ctx.run(self.provider.devices.create_enrolment, account_id, now,
                                  actor=caller.audit_name)
        return pb.DeviceEnrolment(enrolment_code=code,
                                  expire_time=_ts(now + dt.timedelta(hours=24)))

    async def ListDevices(self, request: pb.ListDevicesRequest,
                          context: grpc.aio.ServicerContext) -> pb.ListDevicesResponse:
        caller = current_caller()
        account_id = _account_id(request.parent, "parent")
        await self.ctx.run(self._visible, caller, account_id)
        devices = await self.ctx.run(self.admin.devices, account_id)
        return pb.ListDevicesResponse(devices=[self._device_pb(d) for d in devices])

    async def RevokeDevice(self, request: pb.RevokeDeviceRequest,
                           context: grpc.aio.ServicerContext) -> pb.Device:
        caller = current_caller()
        parts = request.name.split("/")
        if len(parts) != 4 or parts[0] != "accounts" or parts[2] != "devices":
            raise InvalidArgument("name must be accounts/{account_id}/devices/{device_id}",
                                  metadata={"field": "name"})
        await self.ctx.run(self._visible, caller, parts[1])
        device = await self.ctx.run(self.admin.revoke_device, parts[1], parts[3],
                                    self.ctx.clock(), actor=caller.audit_name)
        return self._device_pb(device)

    async def ListConsents(self, request: pb.ListConsentsRequest,
                           context: grpc.aio.ServicerContext) -> pb.ListConsentsResponse:
        caller = current_caller()
        account_id = _account_id(request.parent, "parent")
        await self.ctx.run(self._visible, caller, account_id)
        consents = await self.ctx.run(self.admin.consents, account_id)
        return pb.ListConsentsResponse(consents=[
            pb.Consent(name=f"accounts/{account_id}/consents/{cid}", scopes=sorted(scopes),
                       grant_time=_ts(at)) for cid, scopes, at in consents])

    async def WithdrawConsent(self, request: pb.WithdrawConsentRequest,
                              context: grpc.aio.ServicerContext) -> pb.Consent:
        caller = current_caller()
        parts = request.name.split("/")
        if len(parts) != 4 or parts[0] != "accounts" or parts[2] != "consents":
            raise InvalidArgument("name must be accounts/{account_id}/consents/{client_id}",
                                  metadata={"field": "name"})
        await self.ctx.run(self._visible, caller, parts[1])
        await self.ctx.run(self.admin.withdraw_consent, parts[1], parts[3], self.ctx.clock(),
                           actor=caller.audit_name)
        return pb.Consent(name=request.name, withdrawn=True)



