"""Whether a Hub model can be had before a job starts: in the local cache, or reachable within a short timeout.

A step that names no model gets ``pipeline()``'s default for its task, a Hub id the user never typed; on a machine
with no network (or ``HF_HUB_OFFLINE=1``) that must fail at once with the model's name, not after the Hub client's
retries on every worker. Imports no torch: the job spec uses it on the driver.
"""

from __future__ import annotations

from lakelabel.operators.core.base import ModelLoadError

PROBE_TIMEOUT_S = 10.0
"""Seconds one request to the Hub may take before the model counts as unreachable."""


def check_hub_model(model: str, revision: str | None, *, timeout: float | None = None) -> None:
    """Return if ``model`` at ``revision`` is in the Hugging Face cache or answers on the Hub; else raise.

    Raises:
        ModelLoadError: naming the model and why it cannot be had (offline mode, unreachable Hub, unknown id).
    """
    from huggingface_hub import HfApi, constants, try_to_load_from_cache  # noqa: PLC0415 - driver only

    where = f"model '{model}'" + (f" at revision {revision}" if revision else "")
    if isinstance(try_to_load_from_cache(model, "config.json", revision=revision), str):
        return
    if constants.HF_HUB_OFFLINE:
        raise ModelLoadError(
            f"{where} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE is set"
        )
    limit = PROBE_TIMEOUT_S if timeout is None else timeout
    try:
        HfApi(endpoint=constants.ENDPOINT).model_info(model, revision=revision, timeout=limit)
    except Exception as exc:  # noqa: BLE001 - any failure means the model cannot be fetched; its reason is reported
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"{where} is not in the Hugging Face cache and the Hub at {constants.ENDPOINT} did not give it within"
            f" {limit:g} s ({type(exc).__name__}: {reason})"
        ) from None
