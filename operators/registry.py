"""Task name to operator class: one lookup for built-in tasks, installed entry points and classes of your own.

A step names its operator one of three ways, and ``lookup`` / ``resolve`` answer for all three:

- a built-in task, named as ``transformers.pipeline()`` names it, or one of the aliases it accepts
  (``sentiment-analysis``, ``ner``, ``text-to-speech``): ``TASKS`` and ``ALIASES`` below. A new built-in task is one
  module in ``operators/<room>/`` and one line in ``TASKS``;
- a task an installed package declares under the entry-point group ``lakelabel.operators`` (``name =
  module:Class``). A built-in name always means the built-in: an entry point that names one is ignored, with a
  warning, and a name two distributions declare differently is refused;
- ``module:Class``, a subclass of ``lakelabel.Operator`` imported by name (a job's ``operator:`` field).

Classes are imported on first use, so a job pays only for the libraries its own tasks need. A step without a model
gets the pipeline's default model and revision for its built-in task (``default_model``).
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import logging
import re
import sys
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from lakelabel.operators.core.base import Operator

log = logging.getLogger("lakelabel")

TASKS: dict[str, str] = {
    "text-classification": "lakelabel.operators.text.text_classification:TextClassification",
    "token-classification": "lakelabel.operators.text.token_classification:TokenClassification",
    "zero-shot-classification": "lakelabel.operators.text.zero_shot:ZeroShotClassification",
    "feature-extraction": "lakelabel.operators.text.feature_extraction:FeatureExtraction",
    "summarization": "lakelabel.operators.text.generation:Summarization",
    "translation": "lakelabel.operators.text.generation:Translation",
    "text-generation": "lakelabel.operators.text.text_generation:TextGeneration",
    "question-answering": "lakelabel.operators.text.question_answering:QuestionAnswering",
    "fill-mask": "lakelabel.operators.text.fill_mask:FillMask",
    "image-classification": "lakelabel.operators.vision.image_classification:ImageClassification",
    "object-detection": "lakelabel.operators.vision.object_detection:ObjectDetection",
    "image-to-text": "lakelabel.operators.vision.image_to_text:ImageToText",
    "image-text-to-text": "lakelabel.operators.vision.image_text_to_text:ImageTextToText",
    "automatic-speech-recognition": "lakelabel.operators.audio.speech_recognition:SpeechRecognition",
    "audio-classification": "lakelabel.operators.audio.audio_classification:AudioClassification",
    "text-to-audio": "lakelabel.operators.speech_synthesis.text_to_speech:TextToSpeech",
}
"""Every built-in task, named as ``transformers.pipeline()`` names it, with ``module:Class`` of its operator."""

ALIASES: dict[str, str] = {
    "sentiment-analysis": "text-classification",
    "ner": "token-classification",
    "text-to-speech": "text-to-audio",
}
"""The other names ``pipeline()`` accepts for a task (``transformers.pipelines.TASK_ALIASES``)."""

ENTRY_POINT_GROUP = "lakelabel.operators"
"""The entry-point group under which an installed package declares tasks: ``name = module:Class``."""

BUILT_IN, ENTRY_POINT, CLASS = "built-in", "entry point", "class"
"""Where a name's operator comes from (``Entry.origin``)."""

_TARGET = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_warned: set[tuple[str, str]] = set()


class UnknownTaskError(KeyError):
    """The step names a task no operator implements, or one without a default model and no model is given."""

    def __str__(self) -> str:
        return str(self.args[0])


class OperatorImportError(UnknownTaskError):
    """A ``module:Class`` that cannot be imported, has no such class, or is not a usable ``Operator`` subclass."""


@dataclass(frozen=True)
class Entry:
    """What a name resolves to, before anything is imported.

    Attributes:
        name: the step's task as recorded: a built-in task's own name (aliases resolved), an entry point's name, or
            ``module:Class`` as given.
        target: ``module:Class`` of the operator.
        origin: ``BUILT_IN``, ``ENTRY_POINT`` or ``CLASS``.
        distribution: for an entry point, the distribution that declares it (``name version``).
    """

    name: str
    target: str
    origin: str
    distribution: str | None = None


def _entry_points() -> dict[str, list[importlib.metadata.EntryPoint]]:
    """The installed entry points of ``ENTRY_POINT_GROUP`` by name, one per distinct target; built-in names left out."""
    found: dict[str, list[importlib.metadata.EntryPoint]] = {}
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        source = _declared_by(point)
        if point.name in TASKS or point.name in ALIASES or not _TARGET.match(point.value) or ":" in point.name:
            if (point.name, source) not in _warned:
                _warned.add((point.name, source))
                why = (
                    "a built-in task has that name, and a built-in name cannot be replaced"
                    if point.name in TASKS or point.name in ALIASES
                    else f"a task name holds no ':' and its value must be module:Class, got {point.value!r}"
                )
                log.warning("entry point %s = %s of %s is ignored: %s", point.name, point.value, source, why)
            continue
        same = found.setdefault(point.name, [])
        if all(other.value != point.value for other in same):
            same.append(point)
    return found


def _declared_by(point: importlib.metadata.EntryPoint) -> str:
    dist = getattr(point, "dist", None)
    return f"{dist.metadata['Name']} {dist.version}" if dist is not None else "an unknown distribution"


def _known() -> list[str]:
    return sorted({*TASKS, *(alias for alias, target in ALIASES.items() if target in TASKS), *_entry_points()})


def lookup(name: str) -> Entry:
    """Where ``name`` (a built-in task or alias, an installed entry point, or ``module:Class``) comes from.

    Imports nothing. Raises:
        UnknownTaskError: no built-in task or entry point has that name (the message lists the known ones), or two
            installed distributions declare it differently.
    """
    if ":" in name:
        return Entry(name=name, target=name, origin=CLASS)
    task = ALIASES.get(name, name)
    if task in TASKS:
        return Entry(name=task, target=TASKS[task], origin=BUILT_IN)
    points = _entry_points().get(name, [])
    if len(points) > 1:
        declared = "; ".join(f"{_declared_by(point)}: {point.value}" for point in points)
        raise UnknownTaskError(
            f"task '{name}' is declared by more than one installed distribution ({declared}); uninstall one, or name "
            "the class with operator: module:Class"
        )
    if points:
        point = points[0]
        return Entry(name=name, target=point.value, origin=ENTRY_POINT, distribution=_declared_by(point))
    raise UnknownTaskError(
        f"unknown task '{name}'; known tasks: {', '.join(_known())}; a class of your own is named with "
        "operator: module:Class"
    )


def resolve(name: str) -> type[Operator]:
    """The operator class ``name`` names: a built-in task or alias, an installed entry point, or ``module:Class``.

    The one lookup everything that maps a task to a class goes through. A class that is not built in is imported
    here and checked: it must be a concrete subclass of ``lakelabel.Operator`` defined in a module file.

    Raises:
        UnknownTaskError: the name is unknown (the message lists the known tasks).
        OperatorImportError: its module cannot be imported, lacks the class, or the class is not a usable operator;
            the message names the module.
    """
    entry = lookup(name)
    module_name, _, attribute = entry.target.partition(":")
    if entry.origin == BUILT_IN:
        return getattr(import_module(module_name), attribute)
    what = entry.target if entry.origin == CLASS else f"{entry.target} (entry point '{name}' of {entry.distribution})"
    if not _TARGET.match(entry.target):
        raise OperatorImportError(f"'{entry.target}' is not module:Class (for example my_ops.text:Upper)")
    try:
        module = import_module(module_name)
    except Exception as exc:  # user code may raise anything while it is imported
        raise OperatorImportError(
            f"cannot import module '{module_name}' for {what}: {type(exc).__name__}: {exc}"
        ) from exc
    found: Any = module
    for part in attribute.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise OperatorImportError(f"module '{module_name}' has no attribute '{attribute}' (for {what})")
    return _checked(found, module, what)


def _checked(found: Any, module: Any, what: str) -> type[Operator]:
    from lakelabel.operators.core.base import Operator  # noqa: PLC0415 - registry is imported by base's package

    if not (isinstance(found, type) and issubclass(found, Operator)):
        kind = "a class" if isinstance(found, type) else f"a {type(found).__name__}"
        raise OperatorImportError(
            f"{what} in module '{module.__name__}' is {kind}, not a subclass of lakelabel.Operator"
        )
    if inspect.isabstract(found):
        missing = ", ".join(sorted(getattr(found, "__abstractmethods__", ())))
        raise OperatorImportError(f"{what} in module '{module.__name__}' is abstract: it does not define {missing}")
    if not getattr(module, "__file__", None):
        raise OperatorImportError(
            f"{what}: module '{module.__name__}' has no source file (its provenance is that file's SHA-256); "
            "define the class in a module file"
        )
    return found


operator_class = resolve
"""The operator class for a task (``resolve``; the name built-in callers have always used)."""


def canonical_task(task: str) -> str:
    """The task's own name: ``sentiment-analysis`` is ``text-classification``; an unknown name is returned as given."""
    try:
        return lookup(task).name
    except UnknownTaskError:
        return task


def qualified_name(cls: type) -> str:
    """``module:Class`` of ``cls``."""
    return f"{cls.__module__}:{cls.__qualname__}"


def source_file(cls: type) -> Path:
    """The module file ``cls`` is defined in."""
    return Path(sys.modules[cls.__module__].__file__ or "").resolve()


def distribution_of(cls: type) -> importlib.metadata.Distribution | None:
    """The installed distribution whose files hold the module of ``cls``, or None.

    Found through ``importlib.metadata.packages_distributions``, and only where the distribution's file list
    (``RECORD``) holds the very file the class was imported from: a module of the same name elsewhere on the path
    belongs to no distribution, nor does an editable install's source (its version does not change with its code).
    """
    top = cls.__module__.partition(".")[0]
    path = source_file(cls)
    for name in _owners(tuple(sys.path)).get(top, []):
        dist = importlib.metadata.distribution(name)
        if any(Path(str(dist.locate_file(file))).resolve() == path for file in dist.files or ()):
            return dist
    return None


@functools.cache
def _owners(path: tuple[str, ...]) -> Mapping[str, list[str]]:
    """``packages_distributions()`` for one ``sys.path``: it reads every distribution's file list (about a second)."""
    del path  # the cache key: a distribution added on a new path entry is found
    return importlib.metadata.packages_distributions()


def default_model(task: str) -> tuple[str, str]:
    """The model and revision ``pipeline(task)`` loads when it is given no model, as ``transformers`` defines them.

    Raises:
        UnknownTaskError: the task has no default model in the installed ``transformers`` (``summarization``,
            ``translation`` and ``question-answering`` have none in 5.x).
    """
    from transformers.pipelines import SUPPORTED_TASKS  # noqa: PLC0415 - heavy; only for a step without a model

    name = canonical_task(task)
    defaults = SUPPORTED_TASKS.get(name, {}).get("default", {})
    model = defaults.get("model")
    if model is None:
        raise UnknownTaskError(f"task '{task}' has no default model in transformers; name one in the step's model")
    repo, revision = model
    return repo, revision
