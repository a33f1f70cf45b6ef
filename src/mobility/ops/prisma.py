"""The Prisma schema of the database, rendered from the SQLAlchemy models.

The SQLAlchemy models are the source of truth; `prisma/schema.prisma` is generated from them by
`mobility prisma export` (`make prisma`) and committed, so that Node teams can read the schema or use
Prisma against the same PostgreSQL database. The test suite checks that the committed file is up to date
and that Prisma's own validator (npm `@prisma/prisma-schema-wasm`, see `tools/prisma-validate.mjs`)
accepts it and would format it exactly as it is.

What the rendering follows:

- one model per table, named by the singular PascalCase of the table (`candidate_documents` ->
  `CandidateDocument`) with `@@map("<table>")`; fields are named as the columns (already camelCase);
- scalar types and native types describe the PostgreSQL DDL; native types that are Prisma's defaults
  (`text`, `integer`, `bigint`, `boolean`, `jsonb`, `timestamp(3)`) are left out, as `prisma db pull` does,
  so the legacy tables read `DateTime` and the new ones `DateTime @db.Timestamptz(6)`;
- defaults are the database's (`server_default`), plus `uuid(7)` for ids made by the application and
  `@updatedAt` for columns the ORM sets on update; Python-only defaults (e.g. `[]` for JSON lists) are not
  database defaults and are left out;
- every foreign key is a relation named `"<Model>_<relationField>"` (unique by construction; many tables
  refer to users several times), with explicit `onDelete` and `onUpdate` (Prisma's implicit ones differ
  from the database's). The relation field is named after the column (`agentId` -> `agent`,
  `createdBy` -> `createdByUser`); composite same-tenant keys `(tenantId, agentId) -> (tenantId, id)`
  are named after their own column, and a key of the same columns on both sides (a global key,
  `(tenantId, verificationCode) -> certificate_codes (tenantId, verificationCode)`) after the parent
  (`certificateCode`). The other side gets a list field named after the child table
  (`candidates`), suffixed by the column when the child refers to it more than once
  (`candidatesCreatedBy`), or a single optional field when the child's columns are unique (one-to-one);
- constraint and index names are written with `map:` only where they differ from Prisma's default names
  (they rarely do: the naming convention of `mobility.core.db` is Prisma's);
- CHECK constraints cannot be expressed in Prisma; they are listed in a comment on the model, as
  `prisma db pull` does.

Anything the renderer cannot express faithfully (an unknown column type, a partial or expression index,
an unparseable default) raises `PrismaRenderError` instead of producing a wrong schema.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlalchemy import (
    CheckConstraint,
    Column,
    Enum,
    ForeignKeyConstraint,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import False_, TextClause, True_

from mobility.core.models import new_id

SCHEMA_RELATIVE_PATH = Path("prisma") / "schema.prisma"
EXPORT_COMMAND = "mobility prisma export"

_PG = postgresql.dialect()
# PostgreSQL's NAMEDATALEN - 1: Prisma shortens longer default names, so write those out explicitly.
_MAX_IDENTIFIER = 63
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

_HEADER = f"""\
// Generated from the SQLAlchemy models (src/mobility/models.py) by `{EXPORT_COMMAND}` (`make prisma`).
// Do not edit by hand: change the models, then export again. The test suite fails when this file is out
// of date, or when Prisma's validator rejects it.
//
// Prisma 7: the connection URL is not part of the schema; set it in prisma.config.ts, e.g.
// `datasource: {{ url: env("DATABASE_URL") }}`.
"""

_DATASOURCE = [("provider", '"postgresql"')]
_GENERATOR = [("provider", '"prisma-client"'), ("output", '"../generated/prisma"')]

_REFERENTIAL_ACTIONS = {
    None: "NoAction",
    "NO ACTION": "NoAction",
    "RESTRICT": "Restrict",
    "CASCADE": "Cascade",
    "SET NULL": "SetNull",
    "SET DEFAULT": "SetDefault",
}


class PrismaRenderError(ValueError):
    """The models use something the Prisma schema cannot express (or the renderer does not know yet)."""


# --------------------------------------------------------------------------------------------------
# Names


def model_name(table_name: str) -> str:
    """`candidate_documents` -> `CandidateDocument`, `activity_logs` -> `ActivityLog`."""
    *head, last = table_name.split("_")
    return "".join(part.capitalize() for part in (*head, _singular(last)))


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 3:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _lower_camel(table_name: str) -> str:
    """`candidate_documents` -> `candidateDocuments`."""
    first, *rest = table_name.split("_")
    return first + "".join(part.capitalize() for part in rest)


def _upper_first(name: str) -> str:
    return name[:1].upper() + name[1:]


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _strip_id(column: str) -> str:
    """`agentId` -> `agent`; names not ending in `Id` (`createdBy`) are kept."""
    return column[:-2] if column.endswith("Id") and len(column) > 2 else column


def _default_constraint_name(table: str, columns: list[str] | None, suffix: str) -> str:
    """Prisma's default name of a constraint: `<table>_pkey`, `<table>_<col>_<col>_key|idx|fkey`."""
    return f"{table}_{'_'.join(columns)}_{suffix}" if columns else f"{table}_{suffix}"


def _map_argument(name: str, default: str) -> str | None:
    """`map: "name"` when Prisma would not choose that name by itself."""
    if name == default and len(default) < _MAX_IDENTIFIER - 4:
        return None
    return f"map: {_string(name)}"


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _constraint_name(constraint: object) -> str:
    name = getattr(constraint, "name", None)
    if not isinstance(name, str) or not name:
        raise PrismaRenderError(f"constraint without a name: {constraint!r}")
    return str(name)


# --------------------------------------------------------------------------------------------------
# Types and defaults


@dataclass(frozen=True)
class _ScalarType:
    prisma: str  # String, Int, ..., or an enum's name
    native: str | None = None  # "@db.Uuid", ...
    enum_values: tuple[str, ...] | None = None


_NATIVE_TYPES: list[tuple[re.Pattern[str], str, str | None]] = [
    (re.compile(r"UUID"), "String", "@db.Uuid"),
    (re.compile(r"TEXT"), "String", None),
    (re.compile(r"VARCHAR\((\d+)\)"), "String", "@db.VarChar({0})"),
    (re.compile(r"VARCHAR"), "String", "@db.VarChar"),
    (re.compile(r"CHAR\((\d+)\)"), "String", "@db.Char({0})"),
    (re.compile(r"INTEGER"), "Int", None),
    (re.compile(r"SMALLINT"), "Int", "@db.SmallInt"),
    (re.compile(r"BIGINT"), "BigInt", None),
    (re.compile(r"BOOLEAN"), "Boolean", None),
    (re.compile(r"NUMERIC\((\d+), (\d+)\)"), "Decimal", "@db.Decimal({0}, {1})"),
    (re.compile(r"DOUBLE PRECISION|FLOAT"), "Float", None),
    (re.compile(r"REAL"), "Float", "@db.Real"),
    (re.compile(r"DATE"), "DateTime", "@db.Date"),
    (re.compile(r"TIMESTAMP WITH TIME ZONE"), "DateTime", "@db.Timestamptz(6)"),
    (re.compile(r"TIMESTAMP\((\d)\) WITH TIME ZONE"), "DateTime", "@db.Timestamptz({0})"),
    (re.compile(r"TIMESTAMP(?: WITHOUT TIME ZONE)?"), "DateTime", "@db.Timestamp(6)"),
    (re.compile(r"TIMESTAMP\(3\)(?: WITHOUT TIME ZONE)?"), "DateTime", None),  # Prisma's default
    (re.compile(r"TIMESTAMP\((\d)\)(?: WITHOUT TIME ZONE)?"), "DateTime", "@db.Timestamp({0})"),
    (re.compile(r"JSONB"), "Json", None),
    (re.compile(r"JSON"), "Json", "@db.Json"),
    (re.compile(r"BYTEA"), "Bytes", None),
]


def _pg_type(column: Column) -> object:
    """The column's type as PostgreSQL sees it (JSON().with_variant(JSONB, "postgresql") -> JSONB)."""
    variants = getattr(column.type, "_variant_mapping", None) or {}
    return variants.get("postgresql", column.type)


def _scalar_type(table: Table, column: Column) -> _ScalarType:
    type_ = _pg_type(column)
    if isinstance(type_, Enum) and type_.native_enum:
        if not type_.name or not _IDENTIFIER.match(type_.name):
            raise PrismaRenderError(f"{table.name}.{column.name}: enum type without a usable name")
        return _ScalarType(type_.name, enum_values=tuple(type_.enums))
    ddl = type_.compile(dialect=_PG)
    for pattern, prisma, native in _NATIVE_TYPES:
        match = pattern.fullmatch(ddl)
        if match:
            return _ScalarType(prisma, native.format(*match.groups()) if native else None)
    raise PrismaRenderError(f"{table.name}.{column.name}: no Prisma type for PostgreSQL type {ddl}")


def _default_attribute(table: Table, column: Column, scalar: _ScalarType) -> str | None:
    where = f"{table.name}.{column.name}"
    server_default = column.server_default
    if server_default is None:
        python_default = getattr(column.default, "arg", None)
        if column.primary_key and scalar.native == "@db.Uuid" and callable(python_default):
            # Ids are made by the application, not by the database: UUIDv7 (time-ordered) by `new_id`.
            return "@default(uuid(7))" if _is_new_id(python_default) else "@default(uuid())"
        return None
    arg = getattr(server_default, "arg", None)
    if isinstance(arg, True_ | False_):
        literal = "true" if isinstance(arg, True_) else "false"
        if scalar.prisma != "Boolean":
            raise PrismaRenderError(f"{where}: boolean default on a {scalar.prisma} column")
        return f"@default({literal})"
    if isinstance(arg, TextClause):
        sql = arg.text.strip()
        if sql.upper() in {"CURRENT_TIMESTAMP", "NOW()"}:
            if scalar.prisma != "DateTime":
                raise PrismaRenderError(f"{where}: {sql} default on a {scalar.prisma} column")
            return "@default(now())"
        quoted = re.fullmatch(r"'((?:[^']|'')*)'(?:::[\w \"]+)?", sql)
        if quoted:
            value = quoted.group(1).replace("''", "'")
            return f"@default({_literal(where, value, scalar)})"
        if scalar.prisma in {"Int", "BigInt", "Decimal", "Float", "Boolean"}:
            try:
                return f"@default({_literal(where, sql, scalar)})"
            except PrismaRenderError:
                pass
        # An SQL expression: Prisma leaves it to the database.
        return f"@default(dbgenerated({_string(sql)}))"
    if isinstance(arg, str):
        return f"@default({_literal(where, arg, scalar)})"
    raise PrismaRenderError(f"{where}: cannot render the server default {arg!r}")


def _is_new_id(function: object) -> bool:
    # SQLAlchemy wraps a default callable that takes no context.
    return function is new_id or getattr(function, "__wrapped__", None) is new_id


def _literal(where: str, value: str, scalar: _ScalarType) -> str:
    if scalar.enum_values is not None:
        if value not in scalar.enum_values:
            raise PrismaRenderError(f"{where}: default {value!r} is not a value of enum {scalar.prisma}")
        return value
    if scalar.prisma == "String":
        return _string(value)
    if scalar.prisma == "Boolean" and value.lower() in {"true", "false"}:
        return value.lower()
    if scalar.prisma in {"Int", "BigInt"} and re.fullmatch(r"-?\d+", value):
        return value
    if scalar.prisma in {"Decimal", "Float"}:
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = None
        if number is not None and number.is_finite():
            return value
    if scalar.prisma == "Json":
        return _string(value)
    raise PrismaRenderError(f"{where}: cannot render the default {value!r} for a {scalar.prisma} field")


# --------------------------------------------------------------------------------------------------
# The model graph


@dataclass
class _Field:
    name: str
    type: str
    attributes: list[str] = field(default_factory=list)


@dataclass
class _Relation:
    """One foreign key, seen from both sides."""

    constraint: ForeignKeyConstraint
    child: Table
    parent: Table
    columns: list[str]
    referred: list[str]
    field: str = ""  # on the child
    back_field: str = ""  # on the parent
    name: str = ""
    optional: bool = False
    one_to_one: bool = False


@dataclass
class _Model:
    table: Table
    name: str
    scalars: list[_Field] = field(default_factory=list)
    relations: list[_Field] = field(default_factory=list)
    back_relations: list[_Field] = field(default_factory=list)
    block: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)


def _unique_column_sets(table: Table) -> set[tuple[str, ...]]:
    sets = {tuple(sorted(c.name for c in table.primary_key.columns))}
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint):
            sets.add(tuple(sorted(c.name for c in constraint.columns)))
    for index in table.indexes:
        if index.unique:
            sets.add(tuple(sorted(c.name for c in index.columns)))
    return sets


def _relations(tables: list[Table], models: dict[str, str]) -> list[_Relation]:
    relations: list[_Relation] = []
    for table in tables:
        foreign_keys = [c for c in table.constraints if isinstance(c, ForeignKeyConstraint)]
        for constraint in sorted(foreign_keys, key=_constraint_name):
            parent = constraint.referred_table
            if parent.name not in models:
                raise PrismaRenderError(f"{_constraint_name(constraint)}: {parent.name} is not in the schema")
            columns = [element.parent.name for element in constraint.elements]
            referred = [element.column.name for element in constraint.elements]
            relation = _Relation(constraint, table, parent, columns, referred)
            relation.optional = any(table.columns[c].nullable for c in columns)
            relation.one_to_one = tuple(sorted(columns)) in _unique_column_sets(table)
            relations.append(relation)

    # The child's relation field: named after the column(s) that are not shared with the parent's key,
    # i.e. (tenantId, agentId) -> (tenantId, id) is `agent`; `createdBy` -> users.id is `createdByUser`.
    for relation in relations:
        own = [c for c, r in zip(relation.columns, relation.referred, strict=True) if c != r]
        if not own:
            # The same key on both sides, e.g. a global key (tenantId, verificationCode) ->
            # certificate_codes (tenantId, verificationCode): named after the parent (`certificateCode`).
            relation.field = _lower_first(models[relation.parent.name])
            relation.name = f"{models[relation.child.name]}_{relation.field}"
            continue
        if len(own) == 1 and own[0].endswith("Id") and len(own[0]) > 2:
            relation.field = _strip_id(own[0])
        else:
            relation.field = "".join(
                _strip_id(c) if i == 0 else _upper_first(_strip_id(c)) for i, c in enumerate(own)
            )
            relation.field += models[relation.parent.name]
        # `<Model>_<field>`: unique by construction, as a model has each field name once.
        relation.name = f"{models[relation.child.name]}_{relation.field}"

    # The parent's back-relation field: the child table's name (`candidates`); when the child refers to
    # the parent more than once, the other references get the column as a suffix (`candidatesCreatedBy`).
    by_pair: dict[tuple[str, str], list[_Relation]] = defaultdict(list)
    for relation in relations:
        by_pair[(relation.child.name, relation.parent.name)].append(relation)
    for (child, parent), group in by_pair.items():
        plain = _lower_first(models[parent])
        for relation in group:
            # One-to-one (the child's columns are unique): a single optional field, named singular.
            base = _lower_first(models[child]) if relation.one_to_one else _lower_camel(child)
            if len(group) == 1 or relation.field == plain:
                relation.back_field = base
            else:
                own = [c for c, r in zip(relation.columns, relation.referred, strict=True) if c != r]
                relation.back_field = base + "".join(
                    _upper_first(_strip_id(c)) for c in own or relation.columns
                )
    return relations


def _build_models(metadata: MetaData) -> tuple[list[_Model], dict[str, tuple[str, ...]]]:
    tables = sorted(metadata.tables.values(), key=lambda t: model_name(t.name))
    names = {t.name: model_name(t.name) for t in tables}
    if len(set(names.values())) != len(names):
        raise PrismaRenderError(f"two tables give the same model name: {sorted(names.items())}")
    models = {t.name: _Model(t, names[t.name]) for t in tables}
    enums: dict[str, tuple[str, ...]] = {}

    for table in tables:
        model = models[table.name]
        model.scalars = _scalar_fields(table, enums)

    relations = _relations(tables, names)
    relation_names = [r.name for r in relations]
    duplicates = {n for n in relation_names if relation_names.count(n) > 1}
    if duplicates:
        raise PrismaRenderError(f"relation names are not unique: {sorted(duplicates)}")

    for relation in relations:
        child, parent = models[relation.child.name], models[relation.parent.name]
        arguments = [
            _string(relation.name),
            f"fields: [{', '.join(relation.columns)}]",
            f"references: [{', '.join(relation.referred)}]",
            f"onDelete: {_referential_action(relation.constraint.ondelete)}",
            f"onUpdate: {_referential_action(relation.constraint.onupdate)}",
        ]
        name = _constraint_name(relation.constraint)
        map_argument = _map_argument(
            name, _default_constraint_name(child.table.name, relation.columns, "fkey")
        )
        if map_argument:
            arguments.append(map_argument)
        child.relations.append(
            _Field(
                relation.field,
                parent.name + ("?" if relation.optional else ""),
                [f"@relation({', '.join(arguments)})"],
            )
        )
        parent.back_relations.append(
            _Field(
                relation.back_field,
                child.name + ("?" if relation.one_to_one else "[]"),
                [f"@relation({_string(relation.name)})"],
            )
        )

    for model in models.values():
        model.relations.sort(key=lambda f: f.name)
        model.back_relations.sort(key=lambda f: f.name)
        _check_field_names(model)
        _block_attributes(model)
    return list(models.values()), enums


def _referential_action(action: str | None) -> str:
    key = action.upper() if action else None
    if key not in _REFERENTIAL_ACTIONS:
        raise PrismaRenderError(f"unknown referential action {action!r}")
    return _REFERENTIAL_ACTIONS[key]


def _scalar_fields(table: Table, enums: dict[str, tuple[str, ...]]) -> list[_Field]:
    single_pk = len(table.primary_key.columns) == 1
    single_uniques: dict[str, list[str]] = defaultdict(list)
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint) and len(constraint.columns) == 1:
            (column,) = constraint.columns
            single_uniques[column.name].append(_constraint_name(constraint))
    for index in table.indexes:
        if index.unique and not _is_expression_index(index) and len(index.columns) == 1:
            (column,) = index.columns
            single_uniques[column.name].append(_constraint_name(index))

    fields: list[_Field] = []
    for column in table.columns:
        scalar = _scalar_type(table, column)
        if scalar.enum_values is not None:
            known = enums.setdefault(scalar.prisma, scalar.enum_values)
            if known != scalar.enum_values:
                raise PrismaRenderError(f"enum {scalar.prisma} has different values in {table.name}")
            for value in scalar.enum_values:
                if not _IDENTIFIER.match(value):
                    raise PrismaRenderError(f"enum {scalar.prisma}: {value!r} is not a Prisma identifier")
        if not _IDENTIFIER.match(column.name):
            raise PrismaRenderError(f"{table.name}.{column.name}: not a Prisma field name")
        attributes: list[str] = []
        if column.primary_key and single_pk:
            pk_map = _map_argument(
                _constraint_name(table.primary_key), _default_constraint_name(table.name, None, "pkey")
            )
            attributes.append(f"@id({pk_map})" if pk_map else "@id")
        for name in sorted(single_uniques.get(column.name, [])):
            unique_map = _map_argument(name, _default_constraint_name(table.name, [column.name], "key"))
            attributes.append(f"@unique({unique_map})" if unique_map else "@unique")
        default = _default_attribute(table, column, scalar)
        if default:
            attributes.append(default)
        if column.onupdate is not None and scalar.prisma == "DateTime":
            attributes.append("@updatedAt")
        if scalar.native:
            attributes.append(scalar.native)
        type_ = scalar.prisma + ("?" if column.nullable else "")
        fields.append(_Field(column.name, type_, attributes))
    return fields


def _check_field_names(model: _Model) -> None:
    names = [f.name for f in (*model.scalars, *model.relations, *model.back_relations)]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PrismaRenderError(f"model {model.name}: field names used twice: {duplicates}")


def _block_attributes(model: _Model) -> None:
    table = model.table
    pk_columns = [c.name for c in table.primary_key.columns]
    if len(pk_columns) > 1:
        pk_map = _map_argument(
            _constraint_name(table.primary_key), _default_constraint_name(table.name, None, "pkey")
        )
        model.block.append(f"@@id([{', '.join(pk_columns)}]{', ' + pk_map if pk_map else ''})")
    elif not pk_columns:
        raise PrismaRenderError(f"{table.name}: a table without a primary key")

    uniques: list[tuple[str, list[str]]] = []
    indexes: list[tuple[str, list[str]]] = []
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint) and len(constraint.columns) > 1:
            uniques.append((_constraint_name(constraint), [c.name for c in constraint.columns]))
        elif isinstance(constraint, CheckConstraint) and not getattr(constraint, "_type_bound", False):
            sql = str(constraint.sqltext.compile(dialect=_PG))
            model.comments.append(f"CHECK {_constraint_name(constraint)}: {sql}")
        elif not isinstance(
            constraint, UniqueConstraint | CheckConstraint | ForeignKeyConstraint | PrimaryKeyConstraint
        ):
            raise PrismaRenderError(f"{table.name}: cannot render constraint {constraint!r}")
    for index in table.indexes:
        if _is_expression_index(index):
            # Prisma cannot express these (as `prisma db pull` does, they are left to the database).
            sql = ", ".join(str(e.compile(dialect=_PG)) for e in index.expressions)
            kind = "UNIQUE INDEX" if index.unique else "INDEX"
            model.comments.append(f"{kind} {_constraint_name(index)}: ({sql})")
            continue
        if _is_operator_class_index(index):
            # A trigram index (0018, 0023): left to the database like the expression indexes.
            options = index.dialect_options["postgresql"]._non_defaults
            columns = ", ".join(f"{c.name} {options['ops'].get(c.name, '')}".strip() for c in index.columns)
            included = f" INCLUDE ({', '.join(options['include'])})" if options.get("include") else ""
            model.comments.append(
                f"INDEX {_constraint_name(index)}: USING {options['using']} ({columns}){included}"
            )
            continue
        _check_index(table, index)
        columns = [c.name for c in index.columns]
        if index.unique:
            if len(columns) > 1:
                uniques.append((_constraint_name(index), columns))
        else:
            indexes.append((_constraint_name(index), columns))

    for name, columns in sorted(uniques):
        map_argument = _map_argument(name, _default_constraint_name(table.name, columns, "key"))
        model.block.append(f"@@unique([{', '.join(columns)}]{', ' + map_argument if map_argument else ''})")
    for name, columns in sorted(indexes):
        map_argument = _map_argument(name, _default_constraint_name(table.name, columns, "idx"))
        model.block.append(f"@@index([{', '.join(columns)}]{', ' + map_argument if map_argument else ''})")
    model.block.append(f"@@map({_string(table.name)})")


def _is_expression_index(index: Index) -> bool:
    """A (non-partial) index over SQL expressions, e.g. lower(email), unique or not."""
    partial = index.dialect_options["postgresql"]._non_defaults.get("where") is not None
    return not partial and any(not isinstance(e, Column) for e in index.expressions)


def _is_operator_class_index(index: Index) -> bool:
    """An index with its own access method and operator classes (a pg_trgm GIN or GiST index)."""
    options = index.dialect_options["postgresql"]._non_defaults
    return bool(options.get("ops")) and options.get("using") is not None


def _check_index(table: Table, index: Index) -> None:
    name = _constraint_name(index)
    if len(index.expressions) != len(index.columns) or not all(
        isinstance(e, Column) for e in index.expressions
    ):
        raise PrismaRenderError(f"{table.name}.{name}: expression indexes cannot be rendered")
    options = {
        key: value
        for dialect in ("postgresql", "sqlite")
        for key, value in index.dialect_options[dialect]._non_defaults.items()
        if key not in {"concurrently"}
    }
    if options:
        raise PrismaRenderError(f"{table.name}.{name}: index options {options} cannot be rendered")


# --------------------------------------------------------------------------------------------------
# Text, formatted as `prisma format` would


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows if len(row) > i) for i in range(max(map(len, rows)))]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append((indent + " ".join(cells)).rstrip())
    return lines


def _key_values(kind: str, name: str, pairs: list[tuple[str, str]]) -> list[str]:
    width = max(len(key) for key, _ in pairs)
    return [f"{kind} {name} {{", *(f"  {key.ljust(width)} = {value}" for key, value in pairs), "}"]


def _render_model(model: _Model) -> list[str]:
    lines: list[str] = []
    if model.comments:
        lines.append(
            "/// This table contains check constraints and requires additional setup for migrations. "
            "Visit https://pris.ly/d/check-constraints for more info."
        )
        lines.extend(f"/// {comment}" for comment in sorted(model.comments))
    lines.append(f"model {model.name} {{")
    fields = [*model.scalars, *model.relations, *model.back_relations]
    rows = [[f.name, f.type, " ".join(f.attributes)] if f.attributes else [f.name, f.type] for f in fields]
    lines.extend(_table(rows))
    lines.append("")
    lines.extend(f"  {attribute}" for attribute in model.block)
    lines.append("}")
    return lines


def render_schema(metadata: MetaData) -> str:
    """The complete Prisma schema of `metadata`: datasource, generator, models and enums.

    Deterministic: models and enums in alphabetical order, fields in column order, then relations.
    """
    models, enums = _build_models(metadata)
    clashes = sorted(set(enums) & {m.name for m in models})
    if clashes:
        raise PrismaRenderError(f"names used by both a model and an enum: {clashes}")
    blocks: list[list[str]] = [
        _key_values("datasource", "db", _DATASOURCE),
        _key_values("generator", "client", _GENERATOR),
    ]
    blocks.extend(_render_model(model) for model in models)
    for name in sorted(enums):
        blocks.append([f"enum {name} {{", *(f"  {value}" for value in enums[name]), "}"])
    return _HEADER + "\n" + "\n\n".join("\n".join(block) for block in blocks) + "\n"


def default_path() -> Path:
    from mobility.ops.migrations import PROJECT_ROOT

    return PROJECT_ROOT / SCHEMA_RELATIVE_PATH


def current_schema() -> str:
    """The schema of every model of the application."""
    from mobility.models import metadata

    return render_schema(metadata)


def export(path: Path | None = None) -> Path:
    """Write the Prisma schema of the application's models to `path` (default: prisma/schema.prisma)."""
    path = Path(path) if path is not None else default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(current_schema(), encoding="utf-8", newline="\n")
    return path


def is_up_to_date(path: Path | None = None) -> bool:
    """Whether the file at `path` (default: prisma/schema.prisma) is what `export` would write."""
    path = Path(path) if path is not None else default_path()
    return path.is_file() and path.read_text(encoding="utf-8") == current_schema()
