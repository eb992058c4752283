"""The files of one run: `parallel` at once, each handed to a finisher when its last byte lands."""

from __future__ import annotations

import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from leviathan_tui.agent._emit import emit
from leviathan_tui.agent.fetch_plan import FetchError, PlannedFile
from leviathan_tui.agent.fetch_verify import verify_one
from leviathan_tui.agent.transfer import FileTransfer, RunShared


def download_xet(file: PlannedFile) -> None:
    os.environ.setdefault("HF_XET_HIGH_PERFORMANCE", "1")
    from huggingface_hub import hf_hub_download

    local_dir = file.dest.parent
    got = Path(hf_hub_download(file.repo, file.path, revision=file.revision, local_dir=local_dir))
    if got != file.dest:
        shutil.move(got, file.dest)


def fetch_files(todo: list[PlannedFile], shared: RunShared, parallel: int, xet: bool) -> list[str]:
    """`parallel` files transfer at once; a file whose last byte has landed hands its digest
    check to a finisher, so the next file starts while that hash catches up. A file that fails
    its checksum is fetched again once, that file only."""
    failures: list[str] = []
    lock = threading.Lock()
    outstanding = [len(todo)]
    all_settled = threading.Event()
    if not todo:
        return failures
    transfers = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="file")
    finishers = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="finish")

    def settle(failure: str | None = None) -> None:
        with lock:
            if failure and not shared.stop.is_set():
                failures.append(failure)
            outstanding[0] -= 1
            if outstanding[0] == 0:
                all_settled.set()

    def failed(file: PlannedFile, attempt: int, err: Exception) -> None:
        if shared.stop.is_set():
            settle()
        elif not isinstance(err, FetchError):
            settle(f"{file.name}: {type(err).__name__}: {err}")
        else:
            emit("error", file=file.name, reason=str(err), attempt=attempt + 1)
            if "checksum" in str(err) and attempt == 0:
                transfers.submit(transfer, file, 1)
            else:
                settle(str(err))

    def transfer(file: PlannedFile, attempt: int) -> None:
        try:
            if xet:
                download_xet(file)
                problem = verify_one(file)
                if problem:
                    raise FetchError(f"{file.name}: {problem}")
                emit("file_done", file=file.name, size=file.size, verified=True)
                settle()
                return
            job = FileTransfer(file, shared)
            with shared.stats.thread("transfer"):
                job.transfer()
        except Exception as err:
            failed(file, attempt, err)
            return
        finishers.submit(finish, file, job, attempt)

    def finish(file: PlannedFile, job: FileTransfer, attempt: int) -> None:
        try:
            with shared.stats.thread("transfer"):
                job.finish()
        except Exception as err:
            failed(file, attempt, err)
            return
        settle()

    for file in todo:
        transfers.submit(transfer, file, 0)
    try:
        while not all_settled.wait(0.5):
            pass
    except KeyboardInterrupt:
        shared.stop.set()  # the transfers end within a tick; their partial state stays
        raise
    finally:
        transfers.shutdown(wait=True, cancel_futures=True)
        finishers.shutdown(wait=True, cancel_futures=True)
    return failures
