"""Helpers the Snakefile applies to the settings before any rule is defined."""

from __future__ import annotations

NUMBER_TYPES = {"integer": int, "number": float}


def numbers_where_schema_expects(value, schema: dict):
    """``value`` with strings turned into numbers where ``schema`` expects a number.

    ``snakemake --config`` parses nested values as plain strings, so
    ``noise='{levels: [0, 0.5]}'`` arrives as ``{'levels': ['0', '0.5']}``. Only
    places the schema types as ``integer`` or ``number`` are converted; a string
    that does not spell a number is left for the schema check to refuse, and string
    settings (paths, names) stay strings even when they look like numbers.
    """
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        return {
            key: numbers_where_schema_expects(item, properties.get(key, {}))
            for key, item in value.items()
        }
    if isinstance(value, list):
        items = schema.get("items", {})
        return [numbers_where_schema_expects(item, items) for item in value]
    convert = NUMBER_TYPES.get(schema.get("type"))
    if isinstance(value, str) and convert is not None:
        try:
            number = float(value)
        except ValueError:
            return value
        if convert is int and number.is_integer():
            return int(number)
        return number
    return value


def config_error_line(error) -> str:
    """A jsonschema ValidationError as one line naming the key, e.g.
    ``config train.epochs: '5' is not of type 'integer'``."""
    key = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}"
        for part in error.absolute_path
    ).lstrip(".")
    return f"config {key or '(top level)'}: {error.message}"


def check_config(config: dict, schema_path: str, overrides: dict) -> None:
    """Validate ``config`` in place against the schema (filling in its defaults).

    ``overrides`` are the values given with ``--config``; their strings become
    numbers where the schema expects numbers (values from YAML files keep their
    types, so a quoted number there is still refused). A problem is raised as one
    line naming the key, before any job starts.
    """
    import yaml
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import update_config, validate

    with open(schema_path, encoding="utf-8") as handle:
        schema = yaml.safe_load(handle)
    update_config(config, numbers_where_schema_expects(overrides, schema))
    try:
        validate(config, schema_path)
    except WorkflowError as error:
        problem = error.__context__  # the jsonschema ValidationError
        if not hasattr(problem, "absolute_path"):
            raise
        raise WorkflowError(config_error_line(problem)) from None
