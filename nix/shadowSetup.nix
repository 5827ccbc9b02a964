# shadowSetup: shell commands that prepare `/etc/passwd`, `/etc/shadow`, `/etc/group`,
# `/etc/gshadow`, `/etc/pam.d/other` and `/etc/login.defs` so that `useradd` and `groupadd`
# work in `runAsRoot` or `fakeRootCommands` (as nixpkgs' shadowSetup):
#
#   runAsRoot = ''
#     ${shadowSetup}
#     useradd -m -u 1000 alice
#   '';
#
# With nixpkgs, useradd and groupadd are shadow's. Without nixpkgs they are shell functions
# that edit those files directly (POSIX sh and awk from the toolbox), for the common options:
# useradd -u -g -G -d -s -c -m -M -r -U -N, groupadd -g -r -f.
{ toolbox, pkgs }:

let
  # root's login shell: nixpkgs' runtimeShell (bash in the store), as nixpkgs' shadowSetup
  # writes it; without nixpkgs, /bin/sh (binSh gives one).
  rootShell = if pkgs != null then pkgs.runtimeShell else "/bin/sh";
  files = ''
    mkdir -p /etc/pam.d
    if [ ! -f /etc/passwd ]; then
      echo "root:x:0:0::/root:${rootShell}" > /etc/passwd
      echo "root:!x:::::::" > /etc/shadow
    fi
    if [ ! -f /etc/group ]; then
      echo "root:x:0:" > /etc/group
      echo "root:x::" > /etc/gshadow
    fi
    if [ ! -f /etc/pam.d/other ]; then
      printf '%s\n' 'account sufficient pam_unix.so' 'auth sufficient pam_rootok.so' \
        'password requisite pam_unix.so nullok yescrypt' 'session required pam_unix.so' > /etc/pam.d/other
    fi
    [ -f /etc/login.defs ] || touch /etc/login.defs
  '';
in
if pkgs != null then ''
  export PATH=${pkgs.shadow}/bin:$PATH
  ${files}
'' else ''
  ${files}
  # Files merged from `contents` are symlinks into the read-only store: edit copies.
  _strata_own() {
    for _o_f in /etc/passwd /etc/shadow /etc/group /etc/gshadow; do
      if [ -L "$_o_f" ]; then cp "$_o_f" "$_o_f.strata" && rm "$_o_f" && mv "$_o_f.strata" "$_o_f"; fi
      [ -e "$_o_f" ] || touch "$_o_f"
    done
  }
  # The first free id of /etc/passwd or /etc/group from $2 up to $3.
  _strata_free_id() {
    awk -F: -v lo="$2" -v hi="$3" '{ used[$3] = 1 } END { for (i = lo; i <= hi; i++) if (!(i in used)) { print i; exit } }' "$1"
  }
  # A group's id from its name or id; empty if there is no such group.
  _strata_gid() {
    awk -F: -v g="$1" '$1 == g || $3 == g { print $3; exit }' /etc/group
  }
  groupadd() {
    _strata_own
    _g_gid= _g_system=0 _g_force=0
    while [ $# -gt 1 ]; do
      case "$1" in
        -g|--gid) _g_gid=$2; shift 2 ;;
        -r|--system) _g_system=1; shift ;;
        -f|--force) _g_force=1; shift ;;
        *) echo "groupadd: option $1 is not supported by strata's shadowSetup without nixpkgs" >&2; return 2 ;;
      esac
    done
    if [ -n "$(_strata_gid "$1")" ] && awk -F: -v g="$1" '$1 == g { found = 1 } END { exit !found }' /etc/group; then
      [ "$_g_force" = 1 ] && return 0
      echo "groupadd: group '$1' already exists" >&2; return 9
    fi
    if [ -z "$_g_gid" ]; then
      if [ "$_g_system" = 1 ]; then _g_gid=$(_strata_free_id /etc/group 100 999); else _g_gid=$(_strata_free_id /etc/group 1000 60000); fi
    fi
    echo "$1:x:$_g_gid:" >> /etc/group
    echo "$1:!::" >> /etc/gshadow
  }
  useradd() {
    _strata_own
    _u_uid= _u_group= _u_groups= _u_home= _u_shell=/bin/sh _u_comment= _u_create=0 _u_system=0 _u_usergroup=1
    while [ $# -gt 1 ]; do
      case "$1" in
        -u|--uid) _u_uid=$2; shift 2 ;;
        -g|--gid) _u_group=$2; _u_usergroup=0; shift 2 ;;
        -G|--groups) _u_groups=$2; shift 2 ;;
        -d|--home-dir) _u_home=$2; shift 2 ;;
        -s|--shell) _u_shell=$2; shift 2 ;;
        -c|--comment) _u_comment=$2; shift 2 ;;
        -m|--create-home) _u_create=1; shift ;;
        -M|--no-create-home) _u_create=0; shift ;;
        -r|--system) _u_system=1; shift ;;
        -U|--user-group) _u_usergroup=1; shift ;;
        -N|--no-user-group) _u_usergroup=0; shift ;;
        *) echo "useradd: option $1 is not supported by strata's shadowSetup without nixpkgs" >&2; return 2 ;;
      esac
    done
    _u_name=$1
    if awk -F: -v u="$_u_name" '$1 == u { found = 1 } END { exit !found }' /etc/passwd; then
      echo "useradd: user '$_u_name' already exists" >&2; return 9
    fi
    if [ -z "$_u_uid" ]; then
      if [ "$_u_system" = 1 ]; then _u_uid=$(_strata_free_id /etc/passwd 100 999); else _u_uid=$(_strata_free_id /etc/passwd 1000 60000); fi
    fi
    if [ -n "$_u_group" ]; then
      _u_gid=$(_strata_gid "$_u_group")
      [ -n "$_u_gid" ] || { echo "useradd: group '$_u_group' does not exist" >&2; return 6; }
    elif [ "$_u_usergroup" = 1 ]; then
      _u_gid=$_u_uid
      [ -z "$(_strata_gid "$_u_gid")" ] || _u_gid=$(_strata_free_id /etc/group 1000 60000)
      groupadd -g "$_u_gid" "$_u_name" || return
    else
      _u_gid=100
    fi
    [ -n "$_u_home" ] || _u_home=/home/$_u_name
    echo "$_u_name:x:$_u_uid:$_u_gid:$_u_comment:$_u_home:$_u_shell" >> /etc/passwd
    echo "$_u_name:!:1::::::" >> /etc/shadow
    if [ -n "$_u_groups" ]; then
      for _u_g in $(echo "$_u_groups" | tr , ' '); do
        [ -n "$(_strata_gid "$_u_g")" ] || { echo "useradd: group '$_u_g' does not exist" >&2; return 6; }
        awk -F: -v OFS=: -v g="$_u_g" -v u="$_u_name" '($1 == g || $3 == g) { $4 = ($4 == "" ? u : $4 "," u) } { print }' /etc/group > /etc/group.strata
        cat /etc/group.strata > /etc/group && rm /etc/group.strata
      done
    fi
    if [ "$_u_create" = 1 ]; then
      mkdir -p "$_u_home"
      chown "$_u_uid:$_u_gid" "$_u_home"
      chmod 755 "$_u_home"
    fi
  }
''
