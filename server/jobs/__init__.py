"""Durable jobs shared by every replica: lease, heartbeat, checkpoint, resume.

Long-running work (reconciliation runs, certificate reorganisation runs) is a row in ``jobs``.
A replica claims a job by taking its lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one
writer), renews the lease by heartbeat while it works and records a checkpoint in the same
transaction as each step's effects. When a replica dies its lease runs out; another replica claims
the job and resumes from the checkpoint, so every step is applied exactly once. A replica that lost
its lease (paused, cut off) is fenced: its next step finds another owner and rolls back.
"""

from server.jobs.runner import JobContext, JobInterrupted, JobRunner, LeaseLost

__all__ = ["JobContext", "JobInterrupted", "JobRunner", "LeaseLost"]
