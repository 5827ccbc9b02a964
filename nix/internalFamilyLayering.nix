# A family's layering: the automatic layers of every member chosen together by the helper's
# `plan-family` builder, so that a store path several members hold sits in an identical
# layer in each. Each member's plan reads its part (`family = { layers; member; }`).
{ helper, imageSystem, internalBuilder }:

{
  # Store name.
  name,
  # The members, in a fixed order: a list of `{ name; inputs; }`, `inputs` being the
  # member image's `familyInputs` (the settings its plan gets, with `closureRoots`).
  members,
}:
let
  graph = i: "closure-${toString i}";
  indexed = builtins.genList (i: { inherit i; m = builtins.elemAt members i; }) (builtins.length members);
in
internalBuilder {
  inherit name imageSystem;
  command = "plan-family";
  helperBin = "${helper}/bin/strata";
  members = map ({ i, m }: {
    inherit (m) name;
    graph = graph i;
    # As internalPlan passes them: the config file is not image content.
    settings = builtins.removeAttrs m.inputs [ "closureRoots" ] // {
      inherit imageSystem;
      exclude = [ m.inputs.configFile ];
    };
  }) indexed;
  exportReferencesGraph = builtins.listToAttrs
    (map ({ i, m }: { name = graph i; value = m.inputs.closureRoots; }) indexed);
}
