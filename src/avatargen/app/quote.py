"""Quote: the planned jobs against the ledger. What is already done (resume), what another
process runs, what is only copied, what runs and what that costs against the balance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avatargen.catalog import Catalog
from avatargen.errors import CreditsError
from avatargen.ledger import Ledger
from avatargen.plan import Job


@dataclass
class Classified:
    to_run: list[Job]
    already_done: list[Job]
    exists: list[Job]  # output file there, not ours, and no --overwrite
    busy: list[Job]  # another live process holds the job right now
    # done before, into another folder: the image is copied here at no charge (job, from path)
    copies: list[tuple[Job, Path]] = field(default_factory=list)
    # done before, but its image is gone from everywhere: made again (and charged again)
    regenerate: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Quote:
    images: int
    credits: int
    balance: int
    already_done: int
    copies: int
    exists: int
    busy: int

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DryRun:
    """What --dry-run answers: the quote and the jobs that would run."""

    quote: Quote
    jobs: list[dict[str, Any]]


def classify(ledger: Ledger, jobs: list[Job], overwrite: bool, regenerate: bool = False) -> Classified:
    """`regenerate`: a job the ledger has done is made again (charged), its own file replaced."""
    from avatargen.images import output_has_key

    out = Classified([], [], [], [])
    seen: set[str] = set()
    for job in jobs:
        if job.job_key in seen:
            continue  # the same photo content twice: one job
        seen.add(job.job_key)
        row = ledger.job(job.job_key)
        if regenerate and row and row["status"] == "done":
            row = {**row, "status": "regenerate"}  # neither done here nor copied: made again
        exists = job.output_path.exists()
        earlier = _earlier_output(ledger, job) if row and row["status"] == "done" and not exists else None
        if row and row["status"] == "done" and exists and output_has_key(str(job.output_path), job.job_key):
            out.already_done.append(job)
        elif earlier is not None:
            out.copies.append((job, earlier))
        elif row and row["status"] == "running" and ledger.held_elsewhere(job.job_key):
            out.busy.append(job)
        elif exists and output_has_key(str(job.output_path), job.job_key) and not regenerate:
            out.already_done.append(job)
        elif (
            exists
            and not overwrite
            and not (regenerate and output_has_key(str(job.output_path), job.job_key))
        ):
            out.exists.append(job)
        else:
            out.to_run.append(job)
            if row and row["status"] in ("done", "regenerate"):
                out.regenerate.add(job.job_key)
    return out


def _earlier_output(ledger: Ledger, job: Job) -> Path | None:
    """Where a finished job's image still is (with its job key), when it is not at the new path."""
    from avatargen.images import output_has_key

    for place in ledger.output_paths(job.job_key):
        if place != str(job.output_path) and output_has_key(place, job.job_key):
            return Path(place)
    return None


def quote(catalog: Catalog, groups: Classified, balance: int) -> Quote:
    return Quote(
        images=len(groups.to_run),
        credits=sum(catalog.by_key[j.model].credit_cost for j in groups.to_run),
        balance=balance,
        already_done=len(groups.already_done),
        copies=len(groups.copies),
        exists=len(groups.exists),
        busy=len(groups.busy),
    )


def check_budget(catalog: Catalog, jobs: list[Job], cost: int, balance: int, max_credits: int | None) -> None:
    cheaper = _cheaper_hint(catalog, jobs)
    if max_credits is not None and cost > max_credits:
        raise CreditsError(
            f"the batch needs {cost} credits for {len(jobs)} images, over --max-credits {max_credits}",
            f"raise --max-credits, or run fewer photos{cheaper}",
        )
    if cost > balance:
        raise CreditsError(
            f"the batch needs {cost} credits for {len(jobs)} images, you have {balance}",
            f"add credits with `avatargen credits add N`, or run fewer photos{cheaper}",
        )


def _cheaper_hint(catalog: Catalog, jobs: list[Job]) -> str:
    """', or a cheaper model (--model X)' only when an enabled model costs less than every model
    the batch uses; nothing when it already runs the cheapest."""
    if not jobs:
        return ""
    dearest = max(catalog.by_key[j.model].credit_cost for j in jobs)
    cheaper = sorted(
        (m for m in catalog.by_key.values() if m.enabled and m.credit_cost < dearest),
        key=lambda m: m.credit_cost,
    )
    return (
        f", or a cheaper model (--model {cheaper[0].alias}, {cheaper[0].credit_cost} credits)"
        if cheaper
        else ""
    )
