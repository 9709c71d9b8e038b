"""Certificate authority: issuers, certificates, requests, status log, CRLs, reorganisations.

Revision ID: ca_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.storage.base import BigIntPK, UTCDateTime

revision = "ca_0001"
down_revision = None
branch_labels = ("ca",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "ca_issuers",
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("certificate", sa.LargeBinary(), nullable=False),
        sa.Column("crl_number", sa.BigInteger(), nullable=False),
        sa.Column("last_full_number", sa.BigInteger(), nullable=False),
        sa.Column("last_full_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_ca_issuers")),
    )
    op.create_table(
        "ca_certificates",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("issuer_key_id", sa.String(40), nullable=False),
        sa.Column("serial_number", sa.String(42), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("subject_dn", sa.String(1000), nullable=False),
        sa.Column("common_name", sa.String(200), nullable=False),
        sa.Column("agency_code", sa.String(35), nullable=False),
        sa.Column("province_code", sa.String(2), nullable=False),
        sa.Column("managing_body", sa.String(35), nullable=False),
        sa.Column("subject_json", sa.Text(), nullable=False),
        sa.Column("public_key_sha256", sa.String(64), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("not_before", UTCDateTime(), nullable=False),
        sa.Column("not_after", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revocation_reason", sa.String(32), nullable=True),
        sa.Column("renewal_count", sa.Integer(), nullable=False),
        sa.Column("predecessor_id", sa.BigInteger(), nullable=True),
        sa.Column("superseded_by_id", sa.BigInteger(), nullable=True),
        sa.Column("request_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ca_certificates")),
        sa.ForeignKeyConstraint(["issuer_key_id"], ["ca_issuers.key_id"],
                                name=op.f("fk_ca_certificates_issuer_key_id_ca_issuers")),
        sa.ForeignKeyConstraint(["predecessor_id"], ["ca_certificates.id"],
                                name=op.f("fk_ca_certificates_predecessor_id_ca_certificates")),
        sa.ForeignKeyConstraint(["superseded_by_id"], ["ca_certificates.id"],
                                name=op.f("fk_ca_certificates_superseded_by_id_ca_certificates")),
        sa.UniqueConstraint("issuer_key_id", "serial_number",
                            name=op.f("uq_ca_certificates_issuer_key_id_serial_number")),
    )
    for column in ("common_name", "agency_code", "province_code", "managing_body",
                   "public_key_sha256", "not_after", "status", "predecessor_id"):
        op.create_index(op.f(f"ix_ca_certificates_{column}"), "ca_certificates", [column])
    op.create_table(
        "ca_requests",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("certificate_id", sa.BigInteger(), nullable=True),
        sa.Column("result_certificate_id", sa.BigInteger(), nullable=True),
        sa.Column("managing_body", sa.String(35), nullable=False),
        sa.Column("province_code", sa.String(2), nullable=False),
        sa.Column("subject_json", sa.Text(), nullable=False),
        sa.Column("csr", sa.LargeBinary(), nullable=True),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("client_request_id", sa.String(64), nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("submitted_at", UTCDateTime(), nullable=False),
        sa.Column("approved_at", UTCDateTime(), nullable=True),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("rejected_at", UTCDateTime(), nullable=True),
        sa.Column("decided_by", sa.String(200), nullable=False),
        sa.Column("rejection_reason", sa.String(100), nullable=False),
        sa.Column("rejection_message", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ca_requests")),
        sa.ForeignKeyConstraint(["certificate_id"], ["ca_certificates.id"],
                                name=op.f("fk_ca_requests_certificate_id_ca_certificates")),
        sa.ForeignKeyConstraint(["result_certificate_id"], ["ca_certificates.id"],
                                name=op.f("fk_ca_requests_result_certificate_id_ca_certificates")),
        sa.UniqueConstraint("requested_by", "client_request_id",
                            name=op.f("uq_ca_requests_requested_by_client_request_id")),
    )
    op.create_index(op.f("ix_ca_requests_certificate_id"), "ca_requests", ["certificate_id"])
    op.create_index(op.f("ix_ca_requests_managing_body"), "ca_requests", ["managing_body"])
    op.create_index(op.f("ix_ca_requests_submitted_at"), "ca_requests", ["submitted_at"])
    op.create_index("ix_ca_requests_state_kind", "ca_requests", ["state", "kind"])
    op.create_table(
        "ca_status_log",
        sa.Column("seq", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("issuer_key_id", sa.String(40), nullable=False),
        sa.Column("certificate_id", sa.BigInteger(), nullable=False),
        sa.Column("serial_number", sa.String(42), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ca_status_log")),
        sa.ForeignKeyConstraint(["certificate_id"], ["ca_certificates.id"],
                                name=op.f("fk_ca_status_log_certificate_id_ca_certificates")),
    )
    op.create_index("ix_ca_status_log_issuer_seq", "ca_status_log", ["issuer_key_id", "seq"])
    op.create_table(
        "ca_crls",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("issuer_key_id", sa.String(40), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("is_delta", sa.Boolean(), nullable=False),
        sa.Column("base_number", sa.BigInteger(), nullable=True),
        sa.Column("this_update", UTCDateTime(), nullable=False),
        sa.Column("next_update", UTCDateTime(), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ca_crls")),
        sa.ForeignKeyConstraint(["issuer_key_id"], ["ca_issuers.key_id"],
                                name=op.f("fk_ca_crls_issuer_key_id_ca_issuers")),
        sa.UniqueConstraint("issuer_key_id", "number",
                            name=op.f("uq_ca_crls_issuer_key_id_number")),
    )
    op.create_index("ix_ca_crls_issuer_delta", "ca_crls", ["issuer_key_id", "is_delta", "number"])
    op.create_table(
        "ca_reorganisations",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("mapping_json", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ca_reorganisations")),
        sa.UniqueConstraint("digest", name=op.f("uq_ca_reorganisations_digest")),
    )
    op.create_index(op.f("ix_ca_reorganisations_state"), "ca_reorganisations", ["state"])
    op.create_table(
        "ca_reorganisation_items",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("reorganisation_id", sa.BigInteger(), nullable=False),
        sa.Column("certificate_id", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("new_subject_json", sa.Text(), nullable=False),
        sa.Column("new_managing_body", sa.String(35), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("new_certificate_id", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(300), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ca_reorganisation_items")),
        sa.ForeignKeyConstraint(
            ["reorganisation_id"], ["ca_reorganisations.id"],
            name=op.f("fk_ca_reorganisation_items_reorganisation_id_ca_reorganisations")),
        sa.ForeignKeyConstraint(
            ["certificate_id"], ["ca_certificates.id"],
            name=op.f("fk_ca_reorganisation_items_certificate_id_ca_certificates")),
        sa.ForeignKeyConstraint(
            ["new_certificate_id"], ["ca_certificates.id"],
            name=op.f("fk_ca_reorganisation_items_new_certificate_id_ca_certificates")),
        sa.UniqueConstraint(
            "reorganisation_id", "certificate_id",
            name=op.f("uq_ca_reorganisation_items_reorganisation_id_certificate_id")),
    )
    op.create_index("ix_ca_reorganisation_items_run_state", "ca_reorganisation_items",
                    ["reorganisation_id", "state"])


def downgrade() -> None:
    op.drop_table("ca_reorganisation_items")
    op.drop_table("ca_reorganisations")
    op.drop_table("ca_crls")
    op.drop_table("ca_status_log")
    op.drop_table("ca_requests")
    op.drop_table("ca_certificates")
    op.drop_table("ca_issuers")
