"""Durable jobs: long-running work with an owner, a lease, a heartbeat and a checkpoint.

One row per job. A replica owns a job while ``lease_until`` is in the future and renews it by
heartbeat; when the owner dies the lease runs out and another replica claims the job and resumes
it from ``checkpoint_json`` (see ``server/jobs``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.base import Base, UTCDateTime

__all__ = ["JobRow"]


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    # queued -> running -> done | failed; a running job whose lease ran out is claimable again.
    state: Mapped[str] = mapped_column(String(12))
    params_json: Mapped[str] = mapped_column(Text)
    checkpoint_json: Mapped[str] = mapped_column(Text)
    result_json: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(String(300))
    progress: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer)
    lease_owner: Mapped[str] = mapped_column(String(120))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    not_before: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_jobs_state_not_before", "state", "not_before"),)
