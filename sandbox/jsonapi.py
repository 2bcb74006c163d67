"""JSON:API serialisation the way Patreon does it: sparse fieldsets and includes.

- A resource carries only `type`, `id` and `attributes` (empty unless
  `fields[<type>]=a,b` asks for attributes), plus `relationships` only for the
  relationships named in `include`.
- `included` holds exactly the included resources, once each, each sparse per its own
  `fields[...]`. Dotted include paths (`memberships.campaign`) walk the schema.
- Unknown types, attributes or include paths are a 400 `ParameterInvalid`.
- The word `null` stands for an empty list (`include=null`, `fields[member]=null`):
  Patreon's own generated client sends it for an empty list (`joined_or_null` in the
  official Python client's `jsonapi/url_util.py`), so Patreon must accept it.

The engine knows nothing of Patreon's resources: `schema.py` describes them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.errors import parameter_invalid

FIELDS_PARAM = re.compile(r"^fields\[([^\[\]]+)\]$")

# (resource type name, attribute name, object) -> may this viewer see it?
Visibility = Callable[[str, str, Any], bool]
IncludeTree = Mapping[str, "IncludeTree"]


def see_everything(type_name: str, attribute: str, obj: Any) -> bool:
    return True


@dataclass(frozen=True)
class Relationship:
    target: str  # resource type name
    many: bool
    resolve: Callable[[Any, Any], Any]  # (obj, world) -> obj | list[obj] | None
    scope: str | None = None  # scope required to include it


@dataclass(frozen=True)
class ResourceType:
    name: str
    attributes: Mapping[str, Callable[[Any, Any], Any]]  # name -> (obj, world) -> value
    relationships: Mapping[str, Relationship] = field(default_factory=dict)


class Schema:
    def __init__(self, types: Iterable[ResourceType]):
        self.types = {rtype.name: rtype for rtype in types}

    def __getitem__(self, name: str) -> ResourceType:
        return self.types[name]

    def __contains__(self, name: str) -> bool:
        return name in self.types


@dataclass(frozen=True)
class Query:
    fields: Mapping[str, tuple[str, ...]]
    include: IncludeTree

    @classmethod
    def everything(cls, schema: Schema, include: IncludeTree) -> Query:
        """All attributes of every type: what webhook payloads carry."""
        return cls({name: tuple(t.attributes) for name, t in schema.types.items()}, include)

    def top_includes(self) -> set[str]:
        return set(self.include)


EMPTY_LIST = "null"  # what Patreon's generated clients send for an empty list


def split_list(value: Any) -> list[str]:
    """A comma list; repeated parameters (`a=x&a=y`) count as one list; `null` is []."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        value = ",".join(value)
    items = [item.strip() for item in str(value).split(",") if item.strip()]
    return [] if items == [EMPTY_LIST] else items


def parse_query(params: Mapping[str, Any], schema: Schema, primary: str) -> Query:
    fields: dict[str, tuple[str, ...]] = {}
    for key, value in params.items():
        match = FIELDS_PARAM.match(key)
        if match is None:
            if key.startswith("fields"):
                raise parameter_invalid(f"'{key}' is not a valid parameter; use fields[<type>].")
            continue
        type_name = match.group(1)
        if type_name not in schema:
            raise parameter_invalid(f"fields[{type_name}]: '{type_name}' is not a resource type.")
        names = split_list(value)
        known = schema[type_name].attributes
        unknown = [name for name in names if name not in known]
        if unknown:
            raise parameter_invalid(
                f"fields[{type_name}]: {', '.join(repr(n) for n in unknown)} "
                f"{'is not a valid field' if len(unknown) == 1 else 'are not valid fields'} "
                f"for {type_name}."
            )
        fields[type_name] = tuple(dict.fromkeys(names))
    tree: dict[str, dict] = {}
    for path in split_list(params.get("include")):
        node, rtype = tree, schema[primary]
        for segment in path.split("."):
            relationship = rtype.relationships.get(segment)
            if relationship is None:
                raise parameter_invalid(
                    f"include: '{path}' is not a valid include for {primary} "
                    f"('{segment}' is not a relationship of {rtype.name})."
                )
            node = node.setdefault(segment, {})
            rtype = schema[relationship.target]
    return Query(fields, tree)


def required_scopes(schema: Schema, primary: str, include: IncludeTree) -> list[str]:
    """Scopes that the include paths need, in the order met."""
    needed: list[str] = []

    def walk(rtype: ResourceType, tree: IncludeTree) -> None:
        for name, subtree in tree.items():
            relationship = rtype.relationships[name]
            if relationship.scope and relationship.scope not in needed:
                needed.append(relationship.scope)
            walk(schema[relationship.target], subtree)

    walk(schema[primary], include)
    return needed


class Serializer:
    """Builds one document; not shared between requests."""

    def __init__(self, schema: Schema, world: Any, query: Query, visible: Visibility):
        self.schema = schema
        self.world = world
        self.query = query
        self.visible = visible
        self.primary: dict[tuple[str, str], dict] = {}
        self.included: dict[tuple[str, str], dict] = {}

    def document(self, data: Any, type_name: str, many: bool) -> dict[str, Any]:
        rtype = self.schema[type_name]
        items = data if many else [data]
        resources = []
        for obj in items:
            resource = self._resource(obj, rtype)
            self.primary[(rtype.name, obj.id)] = resource
            resources.append(resource)
        for obj, resource in zip(items, resources, strict=True):
            self._attach(resource, obj, rtype, self.query.include)
        doc: dict[str, Any] = {"data": resources if many else resources[0]}
        if self.included:
            doc["included"] = list(self.included.values())
        elif self.query.include:
            doc["included"] = []
        return doc

    def _resource(self, obj: Any, rtype: ResourceType) -> dict[str, Any]:
        getters = rtype.attributes
        attributes = {
            name: getters[name](obj, self.world)
            for name in self.query.fields.get(rtype.name, ())
            if self.visible(rtype.name, name, obj)
        }
        return {"attributes": attributes, "id": obj.id, "type": rtype.name}

    def _attach(self, resource: dict, obj: Any, rtype: ResourceType, tree: IncludeTree) -> None:
        if not tree:
            return
        relationships = resource.setdefault("relationships", {})
        for name, subtree in tree.items():
            relationship = rtype.relationships[name]
            target = self.schema[relationship.target]
            value = relationship.resolve(obj, self.world)
            related = (value or []) if relationship.many else ([value] if value else [])
            if name not in relationships:
                identifiers = [{"id": other.id, "type": target.name} for other in related]
                if relationship.many:
                    relationships[name] = {"data": identifiers}
                else:
                    relationships[name] = {"data": identifiers[0] if identifiers else None}
            for other in related:
                self._include(other, target, subtree)

    def _include(self, obj: Any, rtype: ResourceType, tree: IncludeTree) -> None:
        key = (rtype.name, obj.id)
        resource = self.primary.get(key) or self.included.get(key)
        if resource is None:
            resource = self._resource(obj, rtype)
            self.included[key] = resource
        self._attach(resource, obj, rtype, tree)
