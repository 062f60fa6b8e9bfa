/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Headers for shiftfs's module-local bindings: what 6.12's kernel::bindings
 * does not carry. bindgen reads this with the kernel's own C flags; the
 * allowlist in bindgen_parameters picks what is used.
 */
#include <linux/backing-file.h>
#include <linux/btrfs.h>
#include <linux/magic.h>
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/fileattr.h>
#include <linux/filelock.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/namei.h>
#include <linux/posix_acl_xattr.h>
#include <linux/seq_file.h>
#include <linux/statfs.h>
#include <linux/user_namespace.h>
#include <linux/xattr.h>

#include "helpers.h"

/*
 * Macros bindgen cannot evaluate, made constants it can (as the kernel's own
 * rust/bindings/bindings_helper.h does).
 */
const gfp_t SHIFTFS_GFP_KERNEL = GFP_KERNEL;
const unsigned long SHIFTFS_SB_RDONLY = SB_RDONLY;
const unsigned long SHIFTFS_SB_NODEV = SB_NODEV;
const unsigned long SHIFTFS_SB_NOSUID = SB_NOSUID;
const unsigned long SHIFTFS_SB_NOEXEC = SB_NOEXEC;
const unsigned long SHIFTFS_SB_POSIXACL = SB_POSIXACL;
const unsigned long SHIFTFS_SB_I_NOEXEC = SB_I_NOEXEC;
const unsigned long SHIFTFS_SB_I_NODEV = SB_I_NODEV;
const unsigned int SHIFTFS_I_NEW = I_NEW;
const unsigned int SHIFTFS_FMODE_CAN_ODIRECT = FMODE_CAN_ODIRECT;
const unsigned int SHIFTFS_FMODE_OPENED = FMODE_OPENED;
const int SHIFTFS_IOCB_NOWAIT = IOCB_NOWAIT;
const unsigned int SHIFTFS_LOOKUP_FOLLOW = LOOKUP_FOLLOW;
const unsigned int SHIFTFS_MNT_NOEXEC = MNT_NOEXEC;
const unsigned int SHIFTFS_MNT_NODEV = MNT_NODEV;
const unsigned int SHIFTFS_MNT_NOATIME = MNT_NOATIME;
const unsigned int SHIFTFS_MNT_NODIRATIME = MNT_NODIRATIME;
const unsigned int SHIFTFS_LOOKUP_RCU = LOOKUP_RCU;
const int SHIFTFS_CAP_LAST_CAP = CAP_LAST_CAP;
/* ioctl numbers (_IOR/_IOW expressions bindgen does not evaluate) */
const unsigned int SHIFTFS_FS_IOC_GETVERSION = FS_IOC_GETVERSION;
const unsigned int SHIFTFS_BTRFS_IOC_FS_INFO = BTRFS_IOC_FS_INFO;
const unsigned int SHIFTFS_BTRFS_IOC_SNAP_CREATE = BTRFS_IOC_SNAP_CREATE;
const unsigned int SHIFTFS_BTRFS_IOC_SNAP_CREATE_V2 = BTRFS_IOC_SNAP_CREATE_V2;
const unsigned int SHIFTFS_BTRFS_IOC_SUBVOL_CREATE = BTRFS_IOC_SUBVOL_CREATE;
const unsigned int SHIFTFS_BTRFS_IOC_SUBVOL_CREATE_V2 = BTRFS_IOC_SUBVOL_CREATE_V2;
const unsigned int SHIFTFS_BTRFS_IOC_SUBVOL_GETFLAGS = BTRFS_IOC_SUBVOL_GETFLAGS;
const unsigned int SHIFTFS_BTRFS_IOC_SUBVOL_SETFLAGS = BTRFS_IOC_SUBVOL_SETFLAGS;
const unsigned int SHIFTFS_BTRFS_IOC_SNAP_DESTROY = BTRFS_IOC_SNAP_DESTROY;
const unsigned long long SHIFTFS_BTRFS_SUBVOL_RDONLY = BTRFS_SUBVOL_RDONLY;
const unsigned long SHIFTFS_BTRFS_SUPER_MAGIC = BTRFS_SUPER_MAGIC;
