/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Thin wrappers of static inline kernel functions that Rust cannot call
 * directly. Each wrapper only calls the inline function it is named after:
 * no logic belongs here.
 */
#ifndef SHIFTFS_HELPERS_H
#define SHIFTFS_HELPERS_H

#include <linux/dcache.h>
#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/posix_acl.h>
#include <linux/seq_file.h>
#include <linux/cred.h>

int shiftfs_fs_parse(struct fs_context *fc,
		     const struct fs_parameter_spec *desc,
		     struct fs_parameter *param,
		     struct fs_parse_result *result);

const struct cred *shiftfs_get_cred(const struct cred *cred);
const struct cred __rcu **shiftfs_current_cred_slot(void);
void shiftfs_put_cred(const struct cred *cred);
void shiftfs_cap_lower(kernel_cap_t *caps, int cap);
bool shiftfs_cap_raised(const kernel_cap_t *caps, int cap);
struct dentry *shiftfs_dget(struct dentry *dentry);
bool shiftfs_d_unhashed(const struct dentry *dentry);
struct file *shiftfs_get_file(struct file *file);
const struct qstr *shiftfs_d_name(const struct dentry *dentry);
unsigned int shiftfs_raw_seqcount_begin(const struct dentry *dentry);
struct dentry *shiftfs_file_dentry(const struct file *file);
unsigned int shiftfs_posix_acl_count(const struct posix_acl *acl);
#ifdef SHIFTFS_KERNEL_7
unsigned int shiftfs_inode_state_read_once(struct inode *inode);
void shiftfs_init_sync_kiocb(struct kiocb *kiocb, struct file *file);
#endif
loff_t shiftfs_i_size_read(const struct inode *inode);
void shiftfs_i_size_write(struct inode *inode, loff_t size);
void shiftfs_file_accessed(struct file *file);
void shiftfs_inode_lock(struct inode *inode);
void shiftfs_inode_unlock(struct inode *inode);
void shiftfs_inode_lock_parent(struct inode *inode);
void shiftfs_spin_lock(spinlock_t *lock);
void shiftfs_spin_unlock(spinlock_t *lock);
unsigned int shiftfs_iocb_flags(struct file *file);
bool shiftfs_d_is_dir(const struct dentry *dentry);
struct posix_acl *shiftfs_posix_acl_dup(struct posix_acl *acl);
void shiftfs_posix_acl_release(struct posix_acl *acl);
void shiftfs_rcu_read_lock(void);
void shiftfs_rcu_read_unlock(void);

#ifdef SHIFTFS_KUNIT
#include <kunit/test.h>

void shiftfs_kunit_set_failure(struct kunit *test);
#endif

#endif /* SHIFTFS_HELPERS_H */
