//! The Nix database of an image (`includeNixDB`): every store path of the image registered
//! with its references, NAR hash and size, so that `nix-store --verify` and
//! `nix-store -q --references` work inside the container.
//!
//! Written with SQLite directly (Nix's schema version 10, what Nix 2.x opens) instead of
//! `nix-store --load-db`, so building an image needs no Nix binary. The file is reproducible:
//! rows are inserted in path order, `registrationTime` is fixed, and the SQLite library is
//! the one compiled into the helper.

use crate::file_error::FileError;
use crate::store::closure::Closure;
use crate::store::path::STORE_DIR;
use rusqlite::Connection;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// The schema version Nix 2.x keeps in `nix/var/nix/db/schema`.
pub const SCHEMA_VERSION: &str = "10";

/// Nix's `schema.sql` (the tables `nix-store` reads and writes).
const SCHEMA: &str = "
create table if not exists ValidPaths (
    id               integer primary key autoincrement not null,
    path             text unique not null,
    hash             text not null,
    registrationTime integer not null,
    deriver          text,
    narSize          integer,
    ultimate         integer,
    sigs             text,
    ca               text
);
create table if not exists Refs (
    referrer  integer not null,
    reference integer not null,
    primary key (referrer, reference),
    foreign key (referrer) references ValidPaths(id) on delete cascade,
    foreign key (reference) references ValidPaths(id) on delete restrict
);
create index if not exists IndexReferrer on Refs(referrer);
create index if not exists IndexReference on Refs(reference);
create trigger if not exists DeleteSelfRefs before delete on ValidPaths
  begin
    delete from Refs where referrer = old.id and reference = old.id;
  end;
create table if not exists DerivationOutputs (
    drv  integer not null,
    id   text not null,
    path text not null,
    primary key (drv, id),
    foreign key (drv) references ValidPaths(id) on delete cascade
);
create index if not exists IndexDerivationOutputs on DerivationOutputs(path);
";

/// Why the database could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NixDbError {
    /// A closure entry has no usable `narHash`.
    #[error("cannot register `{path}` in the Nix database: {source}")]
    Hash {
        /// The store path.
        path: String,
        /// What is wrong with its hash.
        source: NarHashError,
    },
    /// A file or directory could not be created.
    #[error(transparent)]
    Io(#[from] FileError),
    /// SQLite failed.
    #[error("cannot write the Nix database `{path}`: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
}

/// Why a closure entry's `narHash` cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NarHashError {
    /// The closure gives none.
    #[error("the closure gives no narHash")]
    Missing,
    /// An SRI hash whose digest is not 32 bytes of base 64.
    #[error("narHash `{0}` is not a base-64 sha256 digest")]
    NotBase64(String),
    /// Not a sha256 hash.
    #[error("narHash `{0}` is not a sha256 hash")]
    NotSha256(String),
    /// 52 characters that are not Nix's base 32.
    #[error("narHash `{0}` is not base-32")]
    NotBase32(String),
    /// Neither 64 hex digits nor 52 base-32 ones.
    #[error("narHash `{0}` has an unexpected length")]
    Length(String),
}

/// What an image's Nix database registers: store paths with their references, and GC roots.
#[derive(Debug, Clone)]
pub struct NixDbContents {
    /// The paths registered.
    pub closure: Closure,
    /// Store paths that get a GC root.
    pub roots: Vec<String>,
}

impl NixDbContents {
    /// `closure` minus `exclude` (paths not in the image, such as the config file), with a
    /// GC root for each of `roots` that is a store path.
    pub fn new(closure: &Closure, roots: &[PathBuf], exclude: &[String]) -> NixDbContents {
        let closure = Closure::from_entries(
            closure
                .entries()
                .iter()
                .filter(|e| !exclude.contains(&e.path))
                .cloned(),
        );
        let roots = roots
            .iter()
            .map(|r| r.to_string_lossy().into_owned())
            .filter(|r| r.starts_with(&format!("{STORE_DIR}/")) && !exclude.contains(r))
            .collect();
        NixDbContents { closure, roots }
    }

    /// Writes the database under `root`, every path registered at `registered`.
    pub fn write(&self, root: &Path, registered: u64) -> Result<(), NixDbError> {
        write_nix_db(root, &self.closure, &self.roots, registered)
    }
}

/// Writes `root/nix/var/nix/db` registering every path of `closure` (registration time
/// `registered`, seconds since the epoch), and a GC root in `root/nix/var/nix/gcroots/docker/`
/// for each of `roots`, as nixpkgs does.
pub fn write_nix_db(
    root: &Path,
    closure: &Closure,
    roots: &[String],
    registered: u64,
) -> Result<(), NixDbError> {
    let db_dir = root.join("nix/var/nix/db");
    fs::create_dir_all(&db_dir).map_err(FileError::on("write", &db_dir))?;
    let schema = db_dir.join("schema");
    fs::write(&schema, SCHEMA_VERSION).map_err(FileError::on("write", &schema))?;
    let file = db_dir.join("db.sqlite");
    let sql = |source| NixDbError::Sqlite {
        path: file.clone(),
        source,
    };
    let mut rows = Vec::with_capacity(closure.len());
    for e in closure.entries() {
        let hex = e
            .nar_hash
            .as_deref()
            .ok_or(NarHashError::Missing)
            .and_then(nar_hash_base16)
            .map_err(|source| NixDbError::Hash {
                path: e.path.clone(),
                source,
            })?;
        rows.push((e, hex));
    }
    let mut db = Connection::open(&file).map_err(sql)?;
    db.execute_batch("pragma foreign_keys = on;").map_err(sql)?;
    db.execute_batch(SCHEMA).map_err(sql)?;
    let tx = db.transaction().map_err(sql)?;
    {
        let mut insert = tx
            .prepare(
                "insert into ValidPaths (path, hash, registrationTime, narSize) values (?1, ?2, ?3, ?4)",
            )
            .map_err(sql)?;
        for (e, hex) in &rows {
            insert
                .execute(rusqlite::params![
                    e.path,
                    hex,
                    registered as i64,
                    e.nar_size as i64
                ])
                .map_err(sql)?;
        }
        let mut reference = tx
            .prepare(
                "insert or ignore into Refs (referrer, reference) \
                 select a.id, b.id from ValidPaths a, ValidPaths b where a.path = ?1 and b.path = ?2",
            )
            .map_err(sql)?;
        for (e, _) in &rows {
            let mut refs: Vec<&String> = e.references.iter().collect();
            refs.sort();
            for r in refs {
                reference.execute([&e.path, r]).map_err(sql)?;
            }
        }
    }
    tx.commit().map_err(sql)?;
    db.close().map_err(|(_, e)| sql(e))?;

    let gcroots = root.join("nix/var/nix/gcroots/docker");
    fs::create_dir_all(&gcroots).map_err(FileError::on("write", &gcroots))?;
    for r in roots {
        let name = Path::new(r).file_name().unwrap_or_default();
        let link = gcroots.join(name);
        if fs::symlink_metadata(&link).is_err() {
            symlink(r, &link).map_err(FileError::on("write", &link))?;
        }
    }
    Ok(())
}

/// Nix's base-32 alphabet (no e, o, u, t).
const NIX32: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// `sha256:<nixbase32 or hex>` or `sha256-<base64>` → `sha256:<hex>`, the form Nix stores.
///
/// `exportReferencesGraph` gives nixbase32 (Nix 2.8 to 2.26 at least); `nix path-info --json`
/// gives nixbase32 up to Nix 2.18 and SRI (`sha256-<base64>`) from 2.19 on.
pub fn nar_hash_base16(hash: &str) -> Result<String, NarHashError> {
    if let Some(sri) = hash.strip_prefix("sha256-") {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sri)
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| NarHashError::NotBase64(hash.to_owned()))?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        return Ok(format!("sha256:{hex}"));
    }
    let digest = hash
        .strip_prefix("sha256:")
        .ok_or_else(|| NarHashError::NotSha256(hash.to_owned()))?;
    let bytes = match digest.len() {
        64 if digest.bytes().all(|b| b.is_ascii_hexdigit()) => {
            return Ok(format!("sha256:{}", digest.to_ascii_lowercase()))
        }
        52 => nix32_decode(digest, 32).ok_or_else(|| NarHashError::NotBase32(hash.to_owned()))?,
        _ => return Err(NarHashError::Length(hash.to_owned())),
    };
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha256:{hex}"))
}

fn nix32_decode(s: &str, size: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; size];
    let chars = s.as_bytes();
    for n in 0..chars.len() {
        let c = chars[chars.len() - 1 - n];
        let digit = NIX32.iter().position(|&a| a == c)? as u16;
        let b = n * 5;
        let (i, j) = (b / 8, b % 8);
        let shifted = digit << j;
        *out.get_mut(i)? |= shifted as u8;
        let carry = (shifted >> 8) as u8;
        if i + 1 < size {
            out[i + 1] |= carry;
        } else if carry != 0 {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::closure::ClosureEntry;

    #[test]
    fn nix32_hashes_become_hex() {
        // `nix hash file --base32` and `--base16` of the same file.
        let nix32 = "sha256:1r3v22qkypccqifzbww5lrn6hf1chi23m6zzkyvb8bvg457nxslq";
        let hex = "sha256:98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4";
        assert_eq!(nar_hash_base16(nix32).unwrap(), hex);
        assert_eq!(nar_hash_base16(hex).unwrap(), hex);
        assert!(nar_hash_base16("md5:abc").is_err());
        // The toolbox's narHash as Nix 2.26 gives it: exportReferencesGraph (nixbase32) and
        // `nix path-info --json` (SRI).
        assert_eq!(
            nar_hash_base16("sha256-gnrG9qZ4EoLkK7Lw/6/COHG55s9O1M/bMPRnS2iH9jY=").unwrap(),
            nar_hash_base16("sha256:0dpnhxl4nrzl63dwzm2frzkbjw9qqapzzw5j5gj844kqlvvccyl2").unwrap()
        );
        assert!(nar_hash_base16("sha256-AAAA").is_err());
        assert!(nar_hash_base16(&format!("sha256:{}", "e".repeat(52))).is_err());
    }

    #[test]
    fn database_registers_paths_and_references() {
        let dir = tempfile::tempdir().unwrap();
        let a = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a".to_owned();
        let b = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b".to_owned();
        let hash = format!("sha256:{}", "0".repeat(52));
        let closure = Closure::from_entries([
            ClosureEntry {
                path: a.clone(),
                references: vec![a.clone(), b.clone()],
                nar_size: 10,
                nar_hash: Some(hash.clone()),
            },
            ClosureEntry {
                path: b.clone(),
                references: vec![],
                nar_size: 20,
                nar_hash: Some(hash),
            },
        ]);
        write_nix_db(dir.path(), &closure, std::slice::from_ref(&a), 1).unwrap();
        let db = Connection::open(dir.path().join("nix/var/nix/db/db.sqlite")).unwrap();
        let refs: Vec<(String, String)> = db
            .prepare("select a.path, b.path from Refs, ValidPaths a, ValidPaths b where referrer = a.id and reference = b.id order by 1, 2")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(refs, vec![(a.clone(), a.clone()), (a.clone(), b.clone())]);
        let first = fs::read(dir.path().join("nix/var/nix/db/db.sqlite")).unwrap();
        let again = tempfile::tempdir().unwrap();
        write_nix_db(again.path(), &closure, std::slice::from_ref(&a), 1).unwrap();
        assert_eq!(
            first,
            fs::read(again.path().join("nix/var/nix/db/db.sqlite")).unwrap()
        );
        assert!(dir
            .path()
            .join("nix/var/nix/gcroots/docker/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a")
            .is_symlink());
    }
}
