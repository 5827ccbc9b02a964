# A derivation built by the helper: its builder is `strata <command>`, which reads the
# derivation's structured attributes (`.attrs.json`). Every strata builder is one of these.
{ helper, system }:

# The derivation's attributes: `name`, `command` (the helper's subcommand) and whatever that
# subcommand reads; `system` defaults to the library's.
attrs:
derivation (builtins.removeAttrs attrs [ "command" ] // {
  system = attrs.system or system;
  builder = "${helper}/bin/strata";
  args = [ attrs.command ];
  __structuredAttrs = true;
})
