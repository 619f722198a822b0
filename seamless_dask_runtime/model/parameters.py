"""The cluster model: the status file's ``parameters`` and the resource's ``spec``.

Both spellings map onto one validated :class:`ClusterParameters` through
:data:`PARAMETER_TABLE`, the single table that names each field in the status
file (seed 002 spelling, hyphens included) and in the custom resource
(camelCase, dotted for nested fields). Validation collects one
:class:`FieldError` per bad field; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .durations import Duration, Size, format_duration
from .identity import (
    CONTROL_CHARACTER_RANGES,
    DEFAULT_TRANSFORMATION_THROTTLE,
    MAX_WORKERS,
    SHELL_TEXT_ALLOWED_CONTROLS,
)

DEFAULT_TMPDIR = "/tmp"

DEFAULT_UNKNOWN_TASK_DURATION = "1m"
DEFAULT_TARGET_DURATION = "10m"
DEFAULT_LIFETIME_STAGGER = "4m"
LIFETIME_GRACE = "1m"  # fixed in the original wrapper; not a parameter


@dataclass(frozen=True)
class Parameter:
    """One row of the mapping table: a model field and its two spellings."""

    attr: str
    status_key: str
    crd_key: str
    allowed: str


PARAMETER_TABLE: tuple[Parameter, ...] = (
    Parameter("cluster", "cluster", "cluster", "a cluster string MODULE::SYMBOL"),
    Parameter(
        "walltime",
        "walltime",
        "walltime",
        "a duration such as '01:00:00', '1-00:00:00', '55m' or '1h' (a bare number means seconds)",
    ),
    Parameter("cores", "cores", "cores", "a positive integer"),
    Parameter("memory", "memory", "memory", "a size such as '54000MB' or '4GiB', or a number of bytes"),
    Parameter("tmpdir", "tmpdir", "tmpdir", "an absolute directory path"),
    Parameter("partition", "partition", "partition", "a queue/partition name"),
    Parameter("project", "project", "project", "an accounting project name"),
    Parameter(
        "job_extra_directives",
        "job_extra_directives",
        "jobExtraDirectives",
        "a string or a list of strings",
    ),
    Parameter(
        "job_script_prologue", "job_script_prologue", "jobScriptPrologue", "a list of strings"
    ),
    Parameter(
        "unknown_task_duration",
        "unknown-task-duration",
        "unknownTaskDuration",
        "a duration such as '1m'",
    ),
    Parameter(
        "target_duration", "target-duration", "targetDuration", "a duration such as '10m'"
    ),
    Parameter(
        "internal_port_range",
        "internal-port-range",
        "internalPortRange",
        "'START:END' or [START, END] with 1 <= START <= END <= 65535",
    ),
    Parameter("lifetime", "lifetime", "lifetime", "a positive duration such as '55m'"),
    Parameter(
        "lifetime_stagger", "lifetime-stagger", "lifetimeStagger", "a duration such as '4m'"
    ),
    Parameter(
        "transformation_throttle",
        "transformation_throttle",
        "transformationThrottle",
        "a positive integer",
    ),
    Parameter(
        "dask_resources",
        "dask-resources",
        "daskResources",
        "a mapping of resource name to a non-negative number",
    ),
    Parameter("exclusive", "exclusive", "exclusive", "true or false"),
    Parameter("interactive", "interactive", "interactive", "true or false"),
    Parameter("maximum_jobs", "maximum_jobs", "workers.maximum", f"a positive integer, at most {MAX_WORKERS}"),
    Parameter(
        "extra_dask_config",
        "extra_dask_config",
        "extraDaskConfig",
        "a mapping of dotted Dask config keys to values",
    ),
    Parameter("timeout", "timeout", "timeout", "a positive number of seconds"),
    Parameter("pure_dask", "pure_dask", "pureDask", "true or false"),
    Parameter("job_cores", "job_cores", "jobCores", "a positive integer"),
    Parameter("processes", "processes", "processes", "a positive integer"),
    Parameter("worker_threads", "worker_threads", "workerThreads", "a positive integer"),
    Parameter("record", "record", "record", "true or false"),
    Parameter("resource_spec", "resource_spec", "resourceSpec", "an OAR resource string"),
    Parameter(
        "memory_per_core_property_name",
        "memory_per_core_property_name",
        "memoryPerCorePropertyName",
        "an OAR property name",
    ),
    # Kubernetes backends of the wrapper: where the SeamlessDaskCluster (or DaskCluster) goes.
    Parameter("namespace", "namespace", "metadata.namespace", "a Kubernetes namespace name"),
    Parameter("name", "name", "metadata.name", "a DNS-1035 label (lower case, digits, '-')"),
    Parameter("image", "image", "image", "a container image reference"),
)

_BY_ATTR = {p.attr: p for p in PARAMETER_TABLE}
_BY_STATUS_KEY = {p.status_key: p for p in PARAMETER_TABLE}
_BY_CRD_KEY = {p.crd_key: p for p in PARAMETER_TABLE}

Spelling = Literal["status", "crd"]


@dataclass(frozen=True)
class FieldError:
    """One bad field: where, what was given, what is allowed."""

    field: str
    value: Any
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} (got {self.value!r})"


class ParameterError(ValueError):
    """All field errors of one parameter set, each naming its field."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))




def _count(value: Any) -> Any:
    # JSON true is not a count; "24" is (the original wrapper took int("24")).
    if isinstance(value, bool):
        raise ValueError("is a boolean, not an integer")
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


def _flag(value: Any) -> Any:
    # Same spellings as the original wrapper's parse_bool, nothing looser.
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, bool):
        return value
    raise ValueError("is not a boolean")


def _number_as_text(value: Any) -> Any:
    # A JSON number is a duration in seconds; keep it as text like every other spelling.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def _bytes_as_text(value: Any) -> Any:
    # The original wrapper handed a JSON number straight to dask_jobqueue, which reads it as bytes.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("a number of bytes must be a whole number")
        return str(int(value))
    return value


_CONTROL_NAMES = {"\0": "NUL", "\t": "tab", "\n": "newline", "\r": "carriage return", "\x1b": "escape"}


def _control_character(text: str, allowed: frozenset[str] = frozenset()) -> str | None:
    """``"newline (U+000A) at position 3"`` for the first control character of ``text`` (identity's ranges)."""
    for position, char in enumerate(text):
        code = ord(char)
        if char not in allowed and any(first <= code <= last for first, last in CONTROL_CHARACTER_RANGES):
            name = _CONTROL_NAMES.get(char, "control character")
            return f"{name} (U+{code:04X}) at position {position}"
    return None


def _refuse_control_characters(text: str, where: str = "", allowed: frozenset[str] = frozenset()) -> None:
    found = _control_character(text, allowed)
    if found is not None:
        # A line break here would become a line of its own in a job script (a directive, a command).
        raise ValueError(f"{where}contains a {found}; it would break or hide a line of the job script, command "
                         "line or environment it reaches: remove it")


def _texts(value: Any) -> list[tuple[str, str]]:
    """Every key and string inside a JSON value, as (where: the top-level key, text); iterative, any depth."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            found.append((where, item))
        elif isinstance(item, dict):
            for key, child in item.items():
                found.append((f"key {key!r}: ", str(key)))
                stack.append((where or f"{key!r}: ", child))
        elif isinstance(item, (list, tuple)):
            stack.extend((where, child) for child in item)
    return found


Count = Annotated[int, BeforeValidator(_count), Field(gt=0)]
Flag = Annotated[bool, BeforeValidator(_flag)]


class ClusterParameters(BaseModel):
    """Validated cluster parameters with seed 002's defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cluster: str | None = None
    walltime: Annotated[Duration | None, BeforeValidator(_number_as_text)] = None
    cores: Count | None = None
    memory: Annotated[Size | None, BeforeValidator(_bytes_as_text)] = None
    tmpdir: str = DEFAULT_TMPDIR
    partition: str | None = None
    project: str | None = None
    job_extra_directives: tuple[str, ...] = ()
    job_script_prologue: tuple[str, ...] = ()
    unknown_task_duration: Duration = Duration(DEFAULT_UNKNOWN_TASK_DURATION)
    target_duration: Duration = Duration(DEFAULT_TARGET_DURATION)
    internal_port_range: tuple[int, int] | None = None
    lifetime: Duration | None = None
    lifetime_stagger: Duration = Duration(DEFAULT_LIFETIME_STAGGER)
    transformation_throttle: Count = DEFAULT_TRANSFORMATION_THROTTLE
    dask_resources: dict[str, float] | None = None
    exclusive: Flag = False
    interactive: Flag = False
    maximum_jobs: Count = 1
    extra_dask_config: dict[str, Any] = Field(default_factory=dict)
    timeout: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    pure_dask: Flag = False
    job_cores: Count | None = None
    processes: Count | None = None
    worker_threads: Count | None = None
    record: Flag = False
    resource_spec: str | None = None
    memory_per_core_property_name: str | None = None
    namespace: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    name: str | None = Field(default=None, pattern=r"^[a-z]([-a-z0-9]{0,40}[a-z0-9])?$")
    image: str | None = Field(default=None, min_length=1)

    # Derived once, in _cross_field: the rotation lifetime every translation uses (sizing.lifetime).
    _worker_lifetime: Duration | None = PrivateAttr(default=None)

    # First of the validators, so the error says "control character" rather than "not a duration".
    @field_validator("cluster", "walltime", "memory", "tmpdir", "partition", "project", "unknown_task_duration",
                     "target_duration", "lifetime", "lifetime_stagger", "resource_spec",
                     "memory_per_core_property_name", "image")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None:
            _refuse_control_characters(value)
        return value

    @field_validator("job_extra_directives")
    @classmethod
    def _one_line_each(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for index, entry in enumerate(value):  # each entry is one directive line
            _refuse_control_characters(entry, f"entry {index} ")
        return value

    @field_validator("job_script_prologue")
    @classmethod
    def _shell_text(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Shell lines by design: a newline or tab only adds what another entry could say; NUL, CR, ESC... are refused.
        for index, entry in enumerate(value):
            _refuse_control_characters(entry, f"entry {index} ", SHELL_TEXT_ALLOWED_CONTROLS)
        return value

    @field_validator("dask_resources", "extra_dask_config")
    @classmethod
    def _plain_keys_and_values(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        # Keys become environment variable names (DASK_...) and --resources names; values are exported too.
        for where, text in _texts(value):
            _refuse_control_characters(text, where)
        return value

    @field_validator("maximum_jobs")
    @classmethod
    def _bounded_workers(cls, value: int) -> int:
        if value > MAX_WORKERS:
            raise ValueError(f"must be at most {MAX_WORKERS} (the most workers one cluster may have: one Dask "
                             "scheduler serves no more well); run several clusters for more")
        return value

    @field_validator("cluster")
    @classmethod
    def _cluster_string(cls, value: str | None) -> str | None:
        if value is None:
            return value
        module, sep, symbol = value.partition("::")
        if not sep or not module or not symbol:
            raise ValueError("is not MODULE::SYMBOL")
        return value

    @field_validator("walltime", "unknown_task_duration", "target_duration", "lifetime", "lifetime_stagger")
    @classmethod
    def _duration(cls, value: str | None) -> Duration | None:
        return None if value is None else Duration(value)  # the one parse of this duration

    @field_validator("lifetime", "walltime")
    @classmethod
    def _positive_duration(cls, value: Duration | None) -> Duration | None:
        if value is not None and value.seconds <= 0:
            raise ValueError("must be a positive duration")
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | None) -> Size | None:
        if value is None:
            return value
        try:
            size = Size(value)  # the one parse of this size
        except ValueError as exc:
            raise ValueError("is not a size") from exc
        if size.bytes <= 0:
            raise ValueError("must be a positive size")
        return size

    @field_validator("tmpdir")
    @classmethod
    def _tmpdir(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path")
        return value

    @field_validator("job_extra_directives", "job_script_prologue", mode="before")
    @classmethod
    def _string_or_list(cls, value: Any) -> Any:
        # seed 002: ensure_list() lets a single string stand for a list of one.
        if isinstance(value, str):
            return (value,)
        if value is None:
            return ()
        return value

    @field_validator("internal_port_range", mode="before")
    @classmethod
    def _port_range(cls, value: Any) -> Any:
        if isinstance(value, str):
            start, sep, end = value.partition(":")
            if not sep or not start.strip().isdigit() or not end.strip().isdigit():
                raise ValueError("must be 'START:END'")
            value = (int(start), int(end))
        if isinstance(value, (list, tuple)):
            if len(value) != 2 or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value
            ):
                raise ValueError("must be two integer ports")
            start, end = value
            if not 1 <= start <= end <= 65535:
                raise ValueError("must satisfy 1 <= START <= END <= 65535")
            return (start, end)
        return value

    @field_validator("dask_resources")
    @classmethod
    def _resources(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None and any(v < 0 for v in value.values()):
            raise ValueError("resource amounts must not be negative")
        return value

    @field_validator("extra_dask_config")
    @classmethod
    def _extra_config(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not key or key.startswith(".") or key.endswith("."):
                raise ValueError(f"key {key!r} is not a dotted Dask config key")
        prefixes = {key[:i] for key in value for i, c in enumerate(key) if c == "."}
        for key in value:
            if key in prefixes:  # {"a.b": 1, "a.b.c": 2}: a value and a branch at once
                raise ValueError(f"key {key!r} is both a value and the parent of other keys")
        return value

    @model_validator(mode="after")
    def _cross_field(self) -> ClusterParameters:
        if self.exclusive and self.job_cores is not None:
            raise ValueError("job_cores must not be set in exclusive mode")
        if self.cores is None and not self.exclusive:
            object.__setattr__(self, "cores", 1)
        self._worker_lifetime = self._derive_worker_lifetime()
        return self

    def _derive_worker_lifetime(self) -> Duration | None:
        """Seed 002's rotation: ``walltime - stagger - grace``; the user's ``lifetime`` if given; none for a single
        job or pure Dask (its job script has none). A walltime too short to leave one is this field's error."""
        if self.maximum_jobs == 1 or self.pure_dask:
            return None
        if self.lifetime is not None or self.walltime is None:
            return self.lifetime
        remaining = self.walltime.delta - self.lifetime_stagger.delta - Duration(LIFETIME_GRACE).delta
        if remaining.total_seconds() <= 0:
            # "attr: message" names the field in _field_errors, in either spelling.
            raise ValueError(f"walltime: {self.walltime!r} leaves no worker lifetime after stagger "
                             f"{self.lifetime_stagger} and grace {LIFETIME_GRACE}; raise walltime or set lifetime")
        return Duration(format_duration(remaining))

    @property
    def worker_lifetime(self) -> Duration | None:
        """How long a worker lives before Dask rotates it (``distributed.worker.lifetime.duration``), or None."""
        return self._worker_lifetime

    @property
    def explicit_tmpdir(self) -> bool:
        """True when the launcher named tmpdir (the job script then passes it)."""
        return "tmpdir" in self.model_fields_set


def _to_attrs(raw: Mapping[str, Any], spelling: Spelling) -> tuple[dict[str, Any], list[FieldError]]:
    table = _BY_STATUS_KEY if spelling == "status" else _BY_CRD_KEY
    attrs: dict[str, Any] = {}
    errors: list[FieldError] = []
    for key, value in raw.items():
        row = table.get(key)
        if row is None:
            known = ", ".join(sorted(table))
            errors.append(
                FieldError(_field_name(key, spelling), value, f"unknown parameter; known: {known}")
            )
            continue
        if value is None:
            continue  # null means "use the default", as in the original wrapper
        attrs[row.attr] = value
    return attrs, errors


def _field_name(key: str, spelling: Spelling) -> str:
    return f"parameters.{key}" if spelling == "status" else f"spec.{key}"


def _validate(raw: Mapping[str, Any], spelling: Spelling) -> ClusterParameters:
    if not isinstance(raw, Mapping):
        where = "parameters" if spelling == "status" else "spec"
        raise ParameterError([FieldError(where, raw, "must be a JSON object")])
    attrs, errors = _to_attrs(raw, spelling)
    try:
        model = ClusterParameters.model_validate(attrs)
    except ValidationError as exc:
        errors.extend(_field_errors(exc, attrs, spelling))
        model = None
    if errors:
        raise ParameterError(errors)
    assert model is not None
    return model


def _field_errors(exc: ValidationError, attrs: Mapping[str, Any], spelling: Spelling) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[str] = set()
    for err in exc.errors():
        attr = str(err["loc"][0]) if err["loc"] else ""
        if attr in seen:
            continue  # one error per field, the first is the clearest
        seen.add(attr)
        message = str(err["msg"]).removeprefix("Value error, ")
        named, _, rest = message.partition(": ")
        if not attr and named in _BY_ATTR:  # a cross-field error that names its field
            attr, message = named, rest
        row = _BY_ATTR.get(attr)
        if row is None:  # model-level (cross-field) error
            errors.append(FieldError("parameters" if spelling == "status" else "spec", dict(attrs), message))
            continue
        key = row.status_key if spelling == "status" else row.crd_key
        errors.append(
            FieldError(_field_name(key, spelling), attrs.get(attr), f"{message}; expected {row.allowed}")
        )
    return errors


def from_status_parameters(raw: Mapping[str, Any]) -> ClusterParameters:
    """Validate a status file's ``parameters`` dict (seed 002 spelling)."""
    return _validate(raw, "status")


def from_crd_spec(raw: Mapping[str, Any]) -> ClusterParameters:
    """Validate the cluster-model part of a resource spec, flattened to dotted keys."""
    return _validate(raw, "crd")


def to_status_parameters(params: ClusterParameters) -> dict[str, Any]:
    """The status-file spelling of the fields that were set explicitly."""
    return _export(params, "status")


def to_crd_spec(params: ClusterParameters) -> dict[str, Any]:
    """The CRD spelling (flat dotted keys) of the fields that were set explicitly."""
    return _export(params, "crd")


def _export(params: ClusterParameters, spelling: Spelling) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr in params.model_fields_set:
        row = _BY_ATTR[attr]
        value = getattr(params, attr)
        if isinstance(value, tuple):
            value = list(value)
        out[row.status_key if spelling == "status" else row.crd_key] = value
    return out
