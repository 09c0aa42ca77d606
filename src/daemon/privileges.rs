//! Dropping root once the capture sockets are open.
//!
//! The daemon keeps only the capabilities it may still need to reopen a capture socket when
//! an interface disappears and comes back (CAP_NET_RAW, CAP_NET_ADMIN; AF_XDP also needs
//! CAP_BPF, CAP_SYS_ADMIN and CAP_IPC_LOCK), and nothing else.

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Group, Uid, User};

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("no such user {0:?}")]
    NoUser(String),
    #[error("no such group {0:?}")]
    NoGroup(String),
    #[error("cannot switch to user {user:?}: {reason}")]
    Switch { user: String, reason: String },
}

/// Switches to `user` (and `group`, else the user's primary group), keeping `keep`; those of
/// `ambient` (a subset of `keep`) also pass to programs the daemon runs (`nft` needs
/// CAP_NET_ADMIN). An empty `user` changes nothing.
pub fn drop_to(
    user: &str,
    group: &str,
    keep: &[Capability],
    ambient: &[Capability],
) -> Result<(), PrivilegeError> {
    if user.is_empty() {
        return Ok(());
    }
    let fail = |reason: String| PrivilegeError::Switch {
        user: user.to_string(),
        reason,
    };
    let account = User::from_name(user)
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| PrivilegeError::NoUser(user.to_string()))?;
    let gid = if group.is_empty() {
        account.gid
    } else {
        Group::from_name(group)
            .map_err(|e| fail(e.to_string()))?
            .ok_or_else(|| PrivilegeError::NoGroup(group.to_string()))?
            .gid
    };
    if Uid::effective() == account.uid && Gid::effective() == gid {
        return Ok(());
    }
    // Permitted capabilities survive setuid only with keep-caps set.
    caps::securebits::set_keepcaps(true).map_err(|e| fail(format!("keep-caps: {e}")))?;
    nix::unistd::setgroups(&[gid]).map_err(|e| fail(format!("setgroups: {e}")))?;
    nix::unistd::setgid(gid).map_err(|e| fail(format!("setgid: {e}")))?;
    nix::unistd::setuid(account.uid).map_err(|e| fail(format!("setuid: {e}")))?;
    let wanted: CapsHashSet = keep.iter().copied().collect();
    let permitted = caps::read(None, CapSet::Permitted).map_err(|e| fail(e.to_string()))?;
    let kept: CapsHashSet = wanted.intersection(&permitted).copied().collect();
    caps::set(None, CapSet::Permitted, &kept).map_err(|e| fail(format!("capabilities: {e}")))?;
    caps::set(None, CapSet::Effective, &kept).map_err(|e| fail(format!("capabilities: {e}")))?;
    caps::clear(None, CapSet::Inheritable).map_err(|e| fail(e.to_string()))?;
    for cap in ambient.iter().filter(|c| kept.contains(c)) {
        // An ambient capability must be inheritable first.
        caps::raise(None, CapSet::Inheritable, *cap)
            .and_then(|()| caps::raise(None, CapSet::Ambient, *cap))
            .map_err(|e| fail(format!("ambient {cap}: {e}")))?;
    }
    caps::securebits::set_keepcaps(false).map_err(|e| fail(format!("keep-caps: {e}")))?;
    tracing::info!(
        user,
        uid = account.uid.as_raw(),
        gid = gid.as_raw(),
        capabilities = ?kept,
        "dropped privileges"
    );
    Ok(())
}
