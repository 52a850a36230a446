"""Finding, loading and calling plugins (pluggy), built-ins included.

Three sources, in order: DEFAULT_PLUGINS (the built-ins are plugins too), installed packages that
declare an entry point in the ``tladvisor`` group, and every ``*.py`` in a plugins folder
(``--plugins-dir`` or ``TLADVISOR_PLUGINS_DIR``). A plugin that fails to import, or raises inside a
hook, is recorded as a :class:`PluginFailure` naming it; the other plugins' results still stand.
A misspelt hook implementation is a :class:`PluginError` naming the plugin: it would silently do nothing;
so is a hook wrapper, which the host (calling implementations one by one) would never run.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from tladvisor import PROJECT_NAME, __version__, hookspecs
from tladvisor.backbones import BackboneSpec
from tladvisor.errors import BackboneError, PluginError, TLAdvisorError
from tladvisor.records import PluginFailure
from tladvisor.strategies import Strategy, registry_or_built_ins
from tladvisor.text import one_line

DEFAULT_PLUGINS: tuple[str, ...] = (
    "tladvisor.builtin.datasets",
    "tladvisor.builtin.torchvision_zoo",
    "tladvisor.builtin.measures",
    "tladvisor.builtin.recommend",
    "tladvisor.builtin.tuning",
    "tladvisor.builtin.report",
)
ENTRY_POINT_GROUP = PROJECT_NAME
PLUGINS_DIR_ENV = "TLADVISOR_PLUGINS_DIR"


@dataclass(frozen=True)
class PluginInfo:
    name: str
    version: str
    source: str  # "built-in", "entry point (dist)", "plugins dir (path)"
    hooks: tuple[str, ...]


class PluginHost:
    """The plugin manager of one tladvisor session, and the backbone registry it fills."""

    def __init__(self, plugins_dir: str | Path | None = None, *, load_entry_points: bool = True,
                 default_plugins: Iterable[str] = DEFAULT_PLUGINS):
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self._info: dict[str, PluginInfo] = {}
        self._backbones: dict[str, BackboneSpec] | None = None
        self._strategies: dict[str, Strategy] | None = None
        self._resolved: dict[str, BackboneSpec] = {}  # name asked for -> spec a resolve_backbone hook built

        for module_name in default_plugins:
            self._register_module(module_name, importlib.import_module(module_name), "built-in", __version__)
        if load_entry_points:
            self._load_entry_points()
        plugins_dir = plugins_dir or os.environ.get(PLUGINS_DIR_ENV) or None
        if plugins_dir:
            self._load_plugins_dir(Path(plugins_dir))

    # --- loading -------------------------------------------------------------------------------------

    def _register_module(self, name: str, module: ModuleType, source: str, version: str) -> None:
        if self.pm.is_registered(module) or self.pm.has_plugin(name):
            return
        self.pm.register(module, name=name)
        try:
            self._check_hook_names(name, module)
        except PluginError:
            self.pm.unregister(module)
            raise
        wrappers = sorted(impl.function.__name__ for caller in self.pm.get_hookcallers(module) or ()
                          for impl in caller.get_hookimpls()
                          if impl.plugin is module and (impl.hookwrapper or impl.wrapper))
        if wrappers:
            self.pm.unregister(module)
            raise PluginError(f"plugin '{name}' marks {', '.join(wrappers)} as a hook wrapper (wrapper=True or "
                              "hookwrapper=True); tladvisor calls each implementation on its own and never runs "
                              "wrappers: drop the marker and return a result instead")
        hooks = tuple(sorted(c.name for c in self.pm.get_hookcallers(module) or ()))
        self._info[name] = PluginInfo(name, version, source, hooks)

    def _check_hook_names(self, name: str, module: ModuleType) -> None:
        # pluggy adds a caller even for an unknown name once registered: only spec'd hooks count
        known = {hook for hook, caller in vars(self.pm.hook).items() if caller.has_spec()}
        for attr, value in vars(module).items():
            marked = self.pm.parse_hookimpl_opts(module, attr) if callable(value) else None
            if marked is not None and attr not in known:
                hint = difflib.get_close_matches(attr, sorted(known), n=1)
                suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
                raise PluginError(f"plugin '{name}' implements unknown hook '{attr}'{suggestion}")

    def _load_entry_points(self) -> None:
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = entry_point.dist
            source = f"entry point ({dist.name if dist else entry_point.value})"
            version = dist.version if dist else "unknown"
            try:
                module = entry_point.load()
            except Exception as error:  # a broken plugin must not stop the others
                self.failures.append(PluginFailure(entry_point.name, "import", one_line(error)))
                continue
            self._register_module(entry_point.name, module, source, version)

    def _load_plugins_dir(self, folder: Path) -> None:
        if not folder.is_dir():
            raise PluginError(f"plugins folder {folder} does not exist (from --plugins-dir or {PLUGINS_DIR_ENV})")
        for path in sorted(folder.glob("*.py")):
            name = path.stem
            module_name = f"tladvisor_plugins_dir.{name}"
            try:
                spec = importlib.util.spec_from_file_location(module_name, path)
                assert spec and spec.loader
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                spec.loader.exec_module(module)
            except Exception as error:
                sys.modules.pop(module_name, None)
                self.failures.append(PluginFailure(name, "import", f"{path}: {one_line(error)}"))
                continue
            version = str(getattr(module, "__version__", "unversioned"))
            self._register_module(name, module, f"plugins dir ({path})", version)

    # --- calling -------------------------------------------------------------------------------------

    def _implementations(self, hook_name: str):
        caller = getattr(self.pm.hook, hook_name)
        # pluggy calls the last registered first (respecting tryfirst/trylast); keep that order.
        # (No wrappers here: _register_module refuses them.)
        return list(reversed(caller.get_hookimpls()))

    def _call_impl(self, impl, hook_name: str, kwargs: dict[str, Any]) -> tuple[bool, Any]:
        # Arguments an implementation names with a default (``host=None``) are passed too: pluggy lists
        # those apart, in kwargnames, and leaving them out silently gave the plugin its default instead.
        wanted = (*impl.argnames, *getattr(impl, "kwargnames", ()))
        args = {name: kwargs[name] for name in wanted if name in kwargs}
        # A required argument the caller did not pass is one appended to the spec later (write_report's
        # analysis): it arrives as None, as its contract says, instead of failing the plugin.
        args.update({name: None for name in impl.argnames if name not in args})
        if "host" in wanted and kwargs.get("host") is None:
            args["host"] = self  # a hook that calls others gets the host it was called through
        request = args.get("request")
        if request is not None and dataclasses.is_dataclass(request) and getattr(request, "host", False) is None:
            args["request"] = dataclasses.replace(request, host=self)  # tune's request, likewise
        try:
            return True, impl.function(**args)
        except TLAdvisorError:  # a user's mistake (bad data, unknown backbone): one clear line, not a plugin fault
            raise
        except Exception as error:
            if os.environ.get("TLADVISOR_DEBUG"):
                traceback.print_exc()
            self.failures.append(PluginFailure(impl.plugin_name, hook_name, one_line(error)))
            return False, None

    def is_firstresult(self, hook_name: str) -> bool:
        caller = getattr(self.pm.hook, hook_name)
        return bool(caller.spec and caller.spec.opts.get("firstresult"))

    def call(self, hook_name: str, **kwargs) -> Any:
        """Call a hook as its spec says: a firstresult hook gives its first non-None result (or None),
        any other hook the list of every non-None result. Failures are isolated either way."""
        if self.is_firstresult(hook_name):
            return self.call_first(hook_name, **kwargs)
        return [result for _, result in self.call_each(hook_name, **kwargs)]

    def call_each(self, hook_name: str, *, accepting: str | None = None, **kwargs) -> list[tuple[str, Any]]:
        """Call every implementation, isolating failures; return ``[(plugin, result)]`` of the non-None.
        ``accepting``: only the implementations that name this argument (one written for a later contract,
        such as ``write_report`` on a re-render)."""
        results = []
        for impl in self._implementations(hook_name):
            if accepting is not None and accepting not in (*impl.argnames, *getattr(impl, "kwargnames", ())):
                continue
            ok, result = self._call_impl(impl, hook_name, kwargs)
            if ok and result is not None:
                results.append((impl.plugin_name, result))
        return results

    def call_first(self, hook_name: str, **kwargs) -> Any:
        """The first non-None result, trying the next implementation when one raises."""
        for impl in self._implementations(hook_name):
            ok, result = self._call_impl(impl, hook_name, kwargs)
            if ok and result is not None:
                return result
        return None

    # --- listing -------------------------------------------------------------------------------------

    def plugins(self) -> list[PluginInfo]:
        return list(self._info.values())

    def implementers(self, hook_name: str) -> list[PluginInfo]:
        """The plugins implementing a hook, in call order (with their versions: part of cache keys)."""
        return [self._info[impl.plugin_name] for impl in self._implementations(hook_name)
                if impl.plugin_name in self._info]

    def backbones(self) -> dict[str, BackboneSpec]:
        """Every registered backbone by name (collected once, in call order: the first of a name stands)."""
        if self._backbones is None:
            self._backbones = self._collect("register_backbones", BackboneSpec, "backbone", builtins_first=False)
        return self._backbones

    def strategies(self) -> dict[str, Strategy]:
        """Every registered transfer strategy by name (collected once; built-ins first)."""
        if self._strategies is None:
            self._strategies = self._collect("register_strategies", Strategy, "strategy", builtins_first=True)
        return self._strategies

    def _collect(self, hook_name: str, kind: type, noun: str, *, builtins_first: bool) -> dict[str, Any]:
        """Run a ``register_*(register)`` hook: name -> record, the first of a name standing, each tagged
        with its plugin. ``builtins_first``: trylast implementations (the built-ins), last in call order,
        register first, so a plugin re-using a built-in name is the one reported."""
        registry: dict[str, Any] = {}
        implementations = self._implementations(hook_name)
        if builtins_first:
            implementations.sort(key=lambda impl: not impl.trylast)
        for impl in implementations:
            registry_add = _registrar(registry, kind, noun, impl.plugin_name, hook_name, self.failures)
            self._call_impl(impl, hook_name, {"register": registry_add})
        return registry

    def backbone(self, name: str) -> BackboneSpec:
        backbones = self.backbones()
        if name not in backbones and name not in self._resolved:
            self._resolve(name, backbones)
        if name in self._resolved:
            return self._resolved[name]
        if name not in backbones:
            hint = difflib.get_close_matches(name, sorted(backbones), n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise BackboneError(f"unknown backbone '{name}'{suggestion}; `tladvisor backbones` lists them")
        return backbones[name]

    def _resolve(self, name: str, backbones: dict[str, BackboneSpec]) -> None:
        """Ask the resolve_backbone hooks for an unregistered name; keep the first spec returned."""
        for impl in self._implementations("resolve_backbone"):
            ok, spec = self._call_impl(impl, "resolve_backbone", {"name": name})  # BackboneError propagates
            if not ok or spec is None:
                continue
            if not isinstance(spec, BackboneSpec):
                self.failures.append(PluginFailure(impl.plugin_name, "resolve_backbone",
                                                   f"returned {type(spec).__name__} for '{name}', not a BackboneSpec"))
                continue
            self._resolved[name] = backbones.setdefault(spec.name, _with_plugin(spec, impl.plugin_name))
            return

    def backbone_name_patterns(self) -> list[tuple[str, str]]:
        """``[(plugin, first docstring line)]`` of each plugin that resolves backbone names on demand."""
        patterns = []
        for impl in self._implementations("resolve_backbone"):
            doc = (impl.function.__doc__ or "").strip().splitlines()
            patterns.append((impl.plugin_name, doc[0].strip() if doc else "backbone names on demand"))
        return patterns


def _registrar(registry: dict[str, Any], kind: type, noun: str, plugin: str, hook_name: str,
               failures: list[PluginFailure]) -> Callable[[Any], None]:
    def register(record: Any) -> None:
        if not isinstance(record, kind):
            raise TypeError(f"register() takes a {kind.__name__}, got {type(record).__name__}")
        if record.name in registry:
            failures.append(PluginFailure(plugin, hook_name, f"{noun} '{record.name}' is already registered "
                                                             f"by plugin '{registry[record.name].plugin}'; kept that one"))
            return
        registry[record.name] = _with_plugin(record, plugin)

    return register


def strategy_registry(host: PluginHost | None) -> Mapping[str, Strategy]:
    """The host's strategies, or the built-ins without a host (a library caller, a test)."""
    return registry_or_built_ins(host.strategies() if host is not None else None)


def _with_plugin(spec: Any, plugin: str) -> Any:
    from dataclasses import replace

    return replace(spec, plugin=spec.plugin or plugin)
