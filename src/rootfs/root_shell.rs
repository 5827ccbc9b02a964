//! Root-owned changes without a VM: `runAsRoot` and `fakeRootCommands` run as root in a user
//! namespace, inside the ordinary (sandboxed) build.
//!
//! An unprivileged user namespace maps one id: the builder's, seen as root. That is enough to
//! create files, set any mode and `chroot`, but not to give a file another owner. So the
//! script runs under a seccomp filter that hands its `chown` calls to this process (seccomp
//! user notification): the owner each call asks for is recorded against the file's device and
//! inode and the call succeeds without touching the file. The layer writer then takes owners
//! from that record. This covers every program, static or dynamic (`chown`, `useradd`,
//! `tar`, `install -o`), where `LD_PRELOAD`-based fakeroot covers dynamic ones only. The
//! script itself still sees its files owned by root. Nix's sandbox forbids setuid and
//! setgid bits, so those cannot be set here.
#![allow(unsafe_code)] // system calls: namespaces, mounts, seccomp, fd passing

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::chown_calls::{cvt, serve};
pub use crate::tar::layer::Owners;

/// Why a root script could not run or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RootShellError {
    /// Setting up the namespace, the filter or the process failed.
    #[error("cannot run {what} as root in a user namespace: {source}")]
    Setup {
        /// `runAsRoot` or `fakeRootCommands`.
        what: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The script exited with a failure.
    #[error("{what} failed ({status})")]
    Failed {
        /// `runAsRoot` or `fakeRootCommands`.
        what: &'static str,
        /// How it ended.
        status: ExitStatus,
    },
}

/// A shell script to run as root.
#[derive(Debug)]
pub struct RootShell<'a> {
    /// The argument it is (for errors): `runAsRoot`, `fakeRootCommands`.
    pub what: &'static str,
    /// The shell, run as `shell -e -c script`.
    pub shell: &'a Path,
    /// The script.
    pub script: &'a str,
    /// The directory it runs in; with `chroot`, the root it sees as `/`.
    pub dir: &'a Path,
    /// Whether `dir` becomes `/` (with the host's `/nix/store`, `/proc` and `/dev` mounted in).
    pub chroot: bool,
    /// The environment (nothing else is inherited).
    pub env: Vec<(String, String)>,
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

#[cfg(target_arch = "x86_64")]
const CHOWN_CALLS: [i64; 4] = [
    libc::SYS_chown,
    libc::SYS_fchown,
    libc::SYS_lchown,
    libc::SYS_fchownat,
];
#[cfg(target_arch = "aarch64")]
const CHOWN_CALLS: [i64; 2] = [libc::SYS_fchown, libc::SYS_fchownat];

/// The filter: notify this process of the chown calls, allow everything else.
fn filter() -> Vec<libc::sock_filter> {
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    let n = CHOWN_CALLS.len() as u8;
    let mut prog = vec![
        stmt(load, 4), // seccomp_data.arch
        jeq(AUDIT_ARCH, 0, n + 1),
        stmt(load, 0), // seccomp_data.nr
    ];
    for (i, nr) in CHOWN_CALLS.iter().enumerate() {
        // Matching jumps to the notify return after the allow return.
        prog.push(jeq(*nr as u32, n - i as u8, 0));
    }
    prog.push(stmt(ret, libc::SECCOMP_RET_ALLOW));
    prog.push(stmt(ret, libc::SECCOMP_RET_USER_NOTIF));
    prog
}

fn write_proc(path: &CString, text: &[u8]) -> io::Result<()> {
    // SAFETY: plain system calls on a NUL-terminated path and a live buffer.
    unsafe {
        let fd = cvt(libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) as libc::c_long)?
            as RawFd;
        let n = libc::write(fd, text.as_ptr().cast(), text.len());
        libc::close(fd);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn cstring(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other)
}

impl RootShell<'_> {
    /// Runs the script and returns the owners it set.
    pub fn run(&self) -> Result<Owners, RootShellError> {
        let setup = |source| RootShellError::Setup {
            what: self.what,
            source,
        };
        let owners = Arc::new(Mutex::new(Owners::new()));
        let status = self.spawn_and_serve(&owners).map_err(setup)?;
        if !status.success() {
            return Err(RootShellError::Failed {
                what: self.what,
                status,
            });
        }
        let owners = std::mem::take(&mut *owners.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(owners)
    }

    fn spawn_and_serve(&self, owners: &Arc<Mutex<Owners>>) -> io::Result<ExitStatus> {
        let root = fs::canonicalize(self.dir)?;
        // Mount points inside the root, created now and removed afterwards if new.
        let (binds, created) = if self.chroot {
            mount_points(&root)?
        } else {
            (Vec::new(), Vec::new())
        };
        let mut fds = [0 as RawFd; 2];
        // SAFETY: fds has room for the two descriptors.
        cvt(unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        } as libc::c_long)?;
        // SAFETY: socketpair returned two fresh descriptors we now own.
        let (ours, theirs) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let jail = Jail::new(&root, binds, self.chroot, theirs.as_raw_fd())?;

        let mut cmd = Command::new(self.shell);
        cmd.arg("-e")
            .arg("-c")
            .arg(self.script)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        if !self.chroot {
            cmd.current_dir(&root);
        }
        // SAFETY: the closure runs between fork and exec and only makes system calls on data
        // prepared above; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || jail.enter());
        }
        let spawned = cmd.spawn();
        drop(theirs);
        let status = supervise(spawned?, &ours, owners, &root, self.chroot);
        for dir in created.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
        status
    }
}

/// What the child does between fork and exec, prepared beforehand so that it allocates
/// nothing: become root in a new user and mount namespace, chroot when asked, and install
/// the seccomp filter whose listener it sends back over `socket`.
struct Jail {
    uid_map: String,
    gid_map: String,
    setgroups: CString,
    uid_map_path: CString,
    gid_map_path: CString,
    slash: CString,
    root: CString,
    binds: Vec<Bind>,
    chroot: bool,
    filter: Vec<libc::sock_filter>,
    socket: RawFd,
}

impl Jail {
    fn new(root: &Path, binds: Vec<Bind>, chroot: bool, socket: RawFd) -> io::Result<Jail> {
        // SAFETY: getuid and getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let c = |s: &str| CString::new(s).map_err(io::Error::other);
        Ok(Jail {
            uid_map: format!("0 {uid} 1"),
            gid_map: format!("0 {gid} 1"),
            setgroups: c("/proc/self/setgroups")?,
            uid_map_path: c("/proc/self/uid_map")?,
            gid_map_path: c("/proc/self/gid_map")?,
            slash: c("/")?,
            root: cstring(root)?,
            binds,
            chroot,
            filter: filter(),
            socket,
        })
    }

    /// Runs in the child, after fork.
    fn enter(&self) -> io::Result<()> {
        // SAFETY: system calls on the strings and buffers `self` owns, alive for the call.
        unsafe {
            cvt(libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) as libc::c_long)?;
            write_proc(&self.setgroups, b"deny")?;
            write_proc(&self.uid_map_path, self.uid_map.as_bytes())?;
            write_proc(&self.gid_map_path, self.gid_map.as_bytes())?;
            if self.chroot {
                cvt(libc::mount(
                    std::ptr::null(),
                    self.slash.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) as libc::c_long)?;
                for (src, dst, required) in &self.binds {
                    let r = libc::mount(
                        src.as_ptr(),
                        dst.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND | libc::MS_REC,
                        std::ptr::null(),
                    );
                    if r < 0 && *required {
                        return Err(io::Error::last_os_error());
                    }
                }
                cvt(libc::chroot(self.root.as_ptr()) as libc::c_long)?;
                cvt(libc::chdir(self.slash.as_ptr()) as libc::c_long)?;
            }
            cvt(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as libc::c_long)?;
            let fprog = libc::sock_fprog {
                len: self.filter.len() as u16,
                filter: self.filter.as_ptr() as *mut libc::sock_filter,
            };
            let listener = cvt(libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
                &fprog as *const libc::sock_fprog,
            ))? as RawFd;
            send_fd(self.socket, listener)?;
            libc::close(listener);
        }
        Ok(())
    }
}

/// A bind mount into the root: source, target, and whether failing to mount it is an error.
type Bind = (CString, CString, bool);

/// The mount points a chrooted script needs inside `root` (the store, `/proc`, `/dev`),
/// created where missing; returns them and the directories created, parents first.
fn mount_points(root: &Path) -> io::Result<(Vec<Bind>, Vec<PathBuf>)> {
    let mut binds = Vec::new();
    let mut created = Vec::new();
    for (src, required) in [("/nix/store", true), ("/proc", false), ("/dev", false)] {
        let dst = root.join(&src[1..]);
        let mut missing = Vec::new();
        let mut at = dst.clone();
        while fs::symlink_metadata(&at).is_err() && at != root {
            missing.push(at.clone());
            at.pop();
        }
        fs::create_dir_all(&dst)?;
        created.extend(missing.into_iter().rev());
        binds.push((
            CString::new(src).map_err(io::Error::other)?,
            cstring(&dst)?,
            required,
        ));
    }
    Ok((binds, created))
}

/// Takes the seccomp listener the child sends over `ours`, answers its `chown` calls on a
/// thread until it exits, and returns how it ended.
fn supervise(
    mut child: std::process::Child,
    ours: &OwnedFd,
    owners: &Arc<Mutex<Owners>>,
    root: &Path,
    chroot: bool,
) -> io::Result<ExitStatus> {
    let listener = match recv_fd(ours.as_raw_fd()) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    let done = Arc::new(AtomicBool::new(false));
    let serve = {
        let (done, owners, root) = (Arc::clone(&done), Arc::clone(owners), root.to_owned());
        std::thread::spawn(move || serve(&listener, &done, &owners, chroot.then_some(&*root)))
    };
    let status = child.wait();
    done.store(true, Ordering::Relaxed);
    serve
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("supervisor panicked")))?;
    status
}

fn send_fd(socket: RawFd, fd: RawFd) -> io::Result<()> {
    // SAFETY: the message and control buffers live across the call and are sized by CMSG_SPACE.
    unsafe {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut control = [0u8; 64];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        cvt(libc::sendmsg(socket, &msg, 0) as libc::c_long)?;
    }
    Ok(())
}

fn recv_fd(socket: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: as in send_fd; the received descriptor is checked before being owned.
    unsafe {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut control = [0u8; 64];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control.len();
        let n = cvt(libc::recvmsg(socket, &mut msg, libc::MSG_CMSG_CLOEXEC) as libc::c_long)?;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if n == 0 || cmsg.is_null() || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
            return Err(io::Error::other(
                "the script's process ended before installing its seccomp filter",
            ));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// Whether this machine lets an unprivileged process make a user namespace.
    fn namespaces_work() -> bool {
        Command::new("unshare")
            .args(["-U", "-r", "true"])
            .status()
            .is_ok_and(|s| s.success())
    }

    #[test]
    fn chowns_are_recorded_not_applied_and_modes_stick() {
        if !namespaces_work() {
            eprintln!("skipped: no user namespaces here");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let shell = RootShell {
            what: "runAsRoot",
            shell: Path::new("/bin/sh"),
            script: "mkdir -p home/alice tmp && chown 1000:1000 home/alice && chmod 1777 tmp \
                     && touch f && chown -h 5 f && chgrp 7 f && id -u > uid",
            dir: dir.path(),
            chroot: false,
            env: vec![("PATH".into(), "/bin:/usr/bin".into())],
        };
        let owners = shell.run().unwrap();
        let key = |p: &str| {
            let m = fs::symlink_metadata(dir.path().join(p)).unwrap();
            (m.dev(), m.ino())
        };
        assert_eq!(owners[&key("home/alice")], (Some(1000), Some(1000)));
        assert_eq!(owners[&key("f")], (Some(5), Some(7)));
        assert_eq!(
            fs::read_to_string(dir.path().join("uid")).unwrap().trim(),
            "0"
        );
        let tmp = fs::metadata(dir.path().join("tmp")).unwrap();
        assert_eq!(tmp.mode() & 0o7777, 0o1777);

        let failing = RootShell {
            script: "exit 3",
            ..shell
        };
        assert!(matches!(failing.run(), Err(RootShellError::Failed { .. })));
    }
}
