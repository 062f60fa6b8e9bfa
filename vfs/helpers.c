// SPDX-License-Identifier: GPL-2.0
/* Thin wrappers of static inline kernel functions: see helpers.h. */
#include "helpers.h"

int shiftfs_fs_parse(struct fs_context *fc,
		     const struct fs_parameter_spec *desc,
		     struct fs_parameter *param,
		     struct fs_parse_result *result)
{
	return fs_parse(fc, desc, param, result);
}

const struct cred *shiftfs_get_cred(const struct cred *cred)
{
	return get_cred(cred);
}

void shiftfs_put_cred(const struct cred *cred)
{
	put_cred(cred);
}

/*
 * The calling task's subjective credentials pointer, which only the task
 * itself writes: overrides swap it (see vfs/cred.rs). Through this, not
 * the generated task_struct: on 6.12 bindgen puts its cred 64 bytes off.
 */
const struct cred __rcu **shiftfs_current_cred_slot(void)
{
	return &current->cred;
}

void shiftfs_cap_lower(kernel_cap_t *caps, int cap)
{
	cap_lower(*caps, cap);
}

bool shiftfs_cap_raised(const kernel_cap_t *caps, int cap)
{
	return cap_raised(*caps, cap);
}

struct dentry *shiftfs_dget(struct dentry *dentry)
{
	return dget(dentry);
}

/* The fields are in unions of a const and a writable view since 6.17/6.18. */
const struct qstr *shiftfs_d_name(const struct dentry *dentry)
{
	return &dentry->d_name;
}

unsigned int shiftfs_raw_seqcount_begin(const struct dentry *dentry)
{
	return raw_seqcount_begin(&dentry->d_seq);
}

struct dentry *shiftfs_file_dentry(const struct file *file)
{
	return file->f_path.dentry;
}

unsigned int shiftfs_posix_acl_count(const struct posix_acl *acl)
{
	return acl->a_count;
}

#ifdef SHIFTFS_KERNEL_7
unsigned int shiftfs_inode_state_read_once(struct inode *inode)
{
	return inode_state_read_once(inode);
}

void shiftfs_init_sync_kiocb(struct kiocb *kiocb, struct file *file)
{
	init_sync_kiocb(kiocb, file);
}
#endif

bool shiftfs_d_unhashed(const struct dentry *dentry)
{
	return d_unhashed(dentry);
}

struct file *shiftfs_get_file(struct file *file)
{
	return get_file(file);
}

loff_t shiftfs_i_size_read(const struct inode *inode)
{
	return i_size_read(inode);
}

void shiftfs_i_size_write(struct inode *inode, loff_t size)
{
	i_size_write(inode, size);
}

void shiftfs_file_accessed(struct file *file)
{
	file_accessed(file);
}

void shiftfs_inode_lock(struct inode *inode)
{
	inode_lock(inode);
}

void shiftfs_inode_lock_parent(struct inode *inode)
{
	inode_lock_nested(inode, I_MUTEX_PARENT);
}

void shiftfs_inode_unlock(struct inode *inode)
{
	inode_unlock(inode);
}

void shiftfs_spin_lock(spinlock_t *lock)
{
	spin_lock(lock);
}

void shiftfs_spin_unlock(spinlock_t *lock)
{
	spin_unlock(lock);
}

unsigned int shiftfs_iocb_flags(struct file *file)
{
	return iocb_flags(file);
}

bool shiftfs_d_is_dir(const struct dentry *dentry)
{
	return d_is_dir(dentry);
}

struct posix_acl *shiftfs_posix_acl_dup(struct posix_acl *acl)
{
	return posix_acl_dup(acl);
}

void shiftfs_posix_acl_release(struct posix_acl *acl)
{
	posix_acl_release(acl);
}

void shiftfs_rcu_read_lock(void)
{
	rcu_read_lock();
}

void shiftfs_rcu_read_unlock(void)
{
	rcu_read_unlock();
}

#ifdef SHIFTFS_KUNIT
void shiftfs_kunit_set_failure(struct kunit *test)
{
	kunit_set_failure(test);
}
#endif
