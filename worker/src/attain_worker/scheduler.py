"""The worker: APScheduler jobs for the cycle clock and each brand's SFTP poll, one holder each.

Jobs are defined in memory from the database at start and re-synced every minute (APScheduler
3's persistent job store is synchronous; NOTES.md). Every run first takes its job's lock: a
PostgreSQL advisory lock (so several workers never run the same job at once) or, on the
embedded SQLite, an in-process lock (application/job_locks.py). A job whose lock is taken is
skipped this round.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from attain_server.app import App
from attain_server.application.job_locks import JobLocks
from attain_server.application.sftp_settings import all_settings, get_settings
from attain_server.domain.errors import NotFound

from . import clock, sftp

log = structlog.get_logger("attain.worker")

SYNC_SECONDS = 60


class Worker:
    def __init__(
        self, app: App, *, clock_seconds: float = 30.0, settle_seconds: float = 2.0
    ) -> None:
        self.app = app
        self.locks = JobLocks(app.db)
        self.clock_seconds = clock_seconds
        self.settle_seconds = settle_seconds
        self.scheduler = AsyncIOScheduler(timezone=UTC)

    async def start(self) -> None:
        now = datetime.now(UTC)
        # Both run at once on start: a worker that was down catches up immediately.
        self.scheduler.add_job(
            self.run_clock,
            "interval",
            seconds=self.clock_seconds,
            id="clock",
            next_run_time=now,
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.add_job(
            self.sync_jobs,
            "interval",
            seconds=SYNC_SECONDS,
            id="sync",
            next_run_time=now,
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.start()
        log.info("worker started", clock_seconds=self.clock_seconds)

    async def stop(self) -> None:
        self.scheduler.shutdown(wait=False)
        log.info("worker stopped")

    async def run_clock(self) -> list[clock.Transition]:
        async with self.locks.hold("clock") as mine:
            if not mine:
                return []
            try:
                return await clock.tick(self.app)
            except Exception:
                log.exception("cycle clock tick failed; the next tick retries")
                return []

    async def run_pull(self, brand: str) -> list[object]:
        async with self.locks.hold(f"sftp:{brand}") as mine:
            if not mine:
                log.info("sftp poll skipped: another worker holds it", brand=brand)
                return []
            try:
                cfg = await get_settings(db=self.app.db, brand=brand)
                return list(await sftp.pull(self.app, brand, cfg, settle=self.settle_seconds))
            except NotFound:
                return []
            except sftp.SftpFailure as failure:
                log.warning(
                    "sftp poll failed", brand=brand, reason=failure.reason, error=failure.message
                )
                return []
            except Exception:
                log.exception("sftp poll failed", brand=brand)
                return []

    async def sync_jobs(self) -> None:
        """One poll job per brand with SFTP enabled, at the brand's interval."""
        wanted = await all_settings(db=self.app.db)
        for job in self.scheduler.get_jobs():
            if job.id.startswith("sftp:") and job.id[5:] not in wanted:
                job.remove()
        for brand, cfg in wanted.items():
            job_id = f"sftp:{brand}"
            existing = self.scheduler.get_job(job_id)
            interval = float(cfg.poll_interval_seconds)
            if existing is not None and existing.trigger.interval.total_seconds() == interval:
                continue
            self.scheduler.add_job(
                self.run_pull,
                "interval",
                seconds=interval,
                id=job_id,
                args=[brand],
                replace_existing=True,
                max_instances=1,
                coalesce=True,
                next_run_time=datetime.now(UTC),
            )
