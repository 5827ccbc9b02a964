//! Answering a root script's `chown` calls ([`super::root_shell`]): each seccomp user
//! notification names the call and its arguments; the file it means is found (in the
//! script's root when it runs chrooted), the owner it asks for is recorded against the file's
//! device and inode, and the call is told it succeeded.
#![allow(unsafe_code)] // seccomp notifications, reading the caller's memory

use crate::tar::layer::Owners;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Answers chown notifications until the script is done and no more arrive.
pub(super) fn serve(
    listener: &OwnedFd,
    done: &AtomicBool,
    owners: &Mutex<Owners>,
    root: Option<&Path>,
) -> io::Result<()> {
    loop {
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, 50) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if ready == 0 || pfd.revents & libc::POLLIN == 0 {
            if done.load(Ordering::Relaxed) || pfd.revents & libc::POLLHUP != 0 {
                return Ok(());
            }
            continue;
        }
        // SAFETY: the kernel fills the zeroed notification.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: a valid listener fd and a notification buffer of the right type.
        let r = unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV,
                &mut req,
            )
        };
        if r < 0 {
            // The calling process may have died in between (ENOENT): nothing to answer.
            continue;
        }
        let error = match record_chown(&req, root, owners) {
            Ok(()) => 0,
            Err(e) => -e.raw_os_error().unwrap_or(libc::EPERM),
        };
        let mut resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 0,
            error,
            flags: 0,
        };
        // SAFETY: answering the notification just received.
        unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND,
                &mut resp,
            )
        };
    }
}

/// Reads a NUL-terminated string from the calling process's memory.
fn read_string(pid: u32, addr: u64) -> io::Result<Vec<u8>> {
    let mem = fs::File::open(format!("/proc/{pid}/mem"))?;
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    let mut at = addr;
    while out.len() < 4096 {
        let n = mem.read_at(&mut buf, at)?;
        if n == 0 {
            break;
        }
        if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..end]);
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        at += n as u64;
    }
    Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG))
}

/// Resolves the file a chown call names and records the owner it asks for.
fn record_chown(
    req: &libc::seccomp_notif,
    root: Option<&Path>,
    owners: &Mutex<Owners>,
) -> io::Result<()> {
    let pid = req.pid;
    let args = req.data.args;
    let nr = i64::from(req.data.nr);
    // (directory fd or AT_FDCWD, path address or none, uid, gid, follow symlinks)
    let (dirfd, path_addr, uid, gid, follow) = match nr {
        n if n == libc::SYS_fchown => (args[0] as i32, None, args[1], args[2], true),
        n if n == libc::SYS_fchownat => (
            args[0] as i32,
            Some(args[1]),
            args[2],
            args[3],
            args[4] as i32 & libc::AT_SYMLINK_NOFOLLOW == 0,
        ),
        #[cfg(target_arch = "x86_64")]
        n if n == libc::SYS_chown => (libc::AT_FDCWD, Some(args[0]), args[1], args[2], true),
        #[cfg(target_arch = "x86_64")]
        n if n == libc::SYS_lchown => (libc::AT_FDCWD, Some(args[0]), args[1], args[2], false),
        _ => return Err(io::Error::from_raw_os_error(libc::ENOSYS)),
    };
    let path = match path_addr {
        Some(addr) => read_string(pid, addr)?,
        None => Vec::new(),
    };
    let base = if dirfd == libc::AT_FDCWD {
        PathBuf::from(format!("/proc/{pid}/cwd"))
    } else {
        PathBuf::from(format!("/proc/{pid}/fd/{dirfd}"))
    };
    let meta = if path.is_empty() {
        fs::metadata(&base)?
    } else {
        let path = Path::new(std::ffi::OsStr::from_bytes(&path));
        let target = match root {
            // The script's `/` is `root`: resolve within it, symlinks included.
            Some(root) => {
                let inside = if path.is_absolute() {
                    path.to_owned()
                } else {
                    let here = fs::read_link(&base)?;
                    Path::new("/")
                        .join(here.strip_prefix(root).unwrap_or(&here))
                        .join(path)
                };
                return record(owners, &stat_in_root(root, &inside, follow)?, uid, gid);
            }
            None if path.is_absolute() => path.to_owned(),
            None => fs::read_link(&base)?.join(path),
        };
        if follow {
            fs::metadata(target)?
        } else {
            fs::symlink_metadata(target)?
        }
    };
    use std::os::unix::fs::MetadataExt;
    record(owners, &(meta.dev(), meta.ino()), uid, gid)
}

fn record(owners: &Mutex<Owners>, key: &(u64, u64), uid: u64, gid: u64) -> io::Result<()> {
    let id = |v: u64| (v as u32 != u32::MAX).then_some(v as u32);
    let mut owners = owners.lock().unwrap_or_else(|e| e.into_inner());
    let entry = owners.entry(*key).or_insert((None, None));
    if let Some(u) = id(uid) {
        entry.0 = Some(u);
    }
    if let Some(g) = id(gid) {
        entry.1 = Some(g);
    }
    Ok(())
}

/// Device and inode of `path` resolved with `root` as `/` (openat2 RESOLVE_IN_ROOT).
fn stat_in_root(root: &Path, path: &Path, follow: bool) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let dir = fs::File::open(root)?;
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: open_how is plain integers, for which all zeroes is a valid value (and what the
    // kernel wants in the fields not set below).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC | if follow { 0 } else { libc::O_NOFOLLOW }) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT;
    // SAFETY: valid fd, NUL-terminated path and an open_how of the size passed.
    let fd = cvt(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    })?;
    // SAFETY: openat2 returned a fresh descriptor we now own.
    let file = unsafe { fs::File::from_raw_fd(fd as RawFd) };
    let meta = file.metadata()?;
    Ok((meta.dev(), meta.ino()))
}

/// A system call's result, its error taken from `errno` when negative.
pub(super) fn cvt(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}
