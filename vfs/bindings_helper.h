/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Headers for shiftfs's module-local bindings: what 6.12's kernel::bindings
 * does not carry. bindgen reads this with the kernel's own C flags; the
 * allowlist in bindgen_parameters picks what is used.
 */
#include <linux/backing-file.h>
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
const unsigned long SHIFTFS_SB_NOSUID = SB_NOSUID;
const unsigned long SHIFTFS_SB_NOEXEC = SB_NOEXEC;
const unsigned long SHIFTFS_SB_POSIXACL = SB_POSIXACL;
const unsigned long SHIFTFS_SB_I_NOEXEC = SB_I_NOEXEC;
const unsigned long SHIFTFS_SB_I_NODEV = SB_I_NODEV;
const unsigned int SHIFTFS_I_NEW = I_NEW;
const unsigned int SHIFTFS_FMODE_CAN_ODIRECT = FMODE_CAN_ODIRECT;
const unsigned int SHIFTFS_FMODE_OPENED = FMODE_OPENED;
const unsigned int SHIFTFS_LOOKUP_FOLLOW = LOOKUP_FOLLOW;
const unsigned int SHIFTFS_LOOKUP_RCU = LOOKUP_RCU;
