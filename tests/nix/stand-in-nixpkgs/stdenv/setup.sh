# The stand-in stdenv's setup (after the `initialPath=` line the stdenv writes above it): the
# part of nixpkgs' setup that builds, nix-shell images and dockerTools scripts rely on.
__standInOptions=$-
set -eu

PATH=
for p in $initialPath ${nativeBuildInputs-} ${buildInputs-}; do
  PATH=${PATH:+$PATH:}$p/bin
done
export PATH
: "${outputs:=out}"

# Runs the hook named $1: a function of that name, else the shell code in that variable.
runHook() {
  local hook=$1
  if declare -F "$hook" >/dev/null; then "$hook"
  elif [ -n "${!hook-}" ]; then eval "${!hook}"
  fi
}

# substituteInPlace FILE --replace[-fail] OLD NEW ...
substituteInPlace() {
  local file=$1 content
  shift
  IFS= read -r -d '' content < "$file" || true
  while [ $# -gt 0 ]; do
    case $1 in
      --replace|--replace-fail|--replace-quiet)
        if [ "$1" = --replace-fail ] && [[ $content != *"$2"* ]]; then
          echo "substituteInPlace: pattern '$2' not found in $file" >&2
          return 1
        fi
        content=${content//"$2"/"$3"}
        shift 3 ;;
      *) echo "substituteInPlace: unknown argument $1" >&2; return 1 ;;
    esac
  done
  printf '%s' "$content" > "$file"
}

genericBuild() {
  if [ -n "${buildCommand-}" ]; then
    eval "$buildCommand"
    return
  fi
  local phase
  for phase in ${phases:-buildPhase installPhase}; do
    if [ -n "${!phase-}" ]; then eval "${!phase}"
    elif declare -F "$phase" >/dev/null; then "$phase"
    fi
  done
}

# As nixpkgs' setup does, give the caller back the options it had.
case $__standInOptions in *e*) ;; *) set +e ;; esac
case $__standInOptions in *u*) ;; *) set +u ;; esac
