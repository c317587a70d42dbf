/* h5util: checked HDF5 helpers. Every failure names the file and the object, says what
 * was expected and what was found, and stops the job with EXIT_INPUT (bad input file) or
 * EXIT_RUNTIME (cannot write). HDF5's own error stack printing is switched off so users
 * see one clear line instead of a trace. */
#ifndef RNNTRAIN_H5UTIL_H
#define RNNTRAIN_H5UTIL_H

#include <hdf5.h>
#include <stdint.h>

/* Silence HDF5's automatic error printing (call once at start). */
void h5_quiet(void);
/* Opens an existing HDF5 file read-only; `what` says what it is for ("data file"). */
hid_t h5_open_read(const char *path, const char *what);
/* 1 if another process holds an HDF5 write lock on path (why an open failed). */
int h5_locked_by_other(const char *path);
/* Opens a data file whose attribute format must be `format` and version 1; `hint` says how
 * to make one. Dies naming the file, what was expected and what was found. */
hid_t h5_open_dataset_file(const char *path, const char *format, const char *hint);
/* Creates (truncates) a file for writing. */
hid_t h5_create(const char *path);
/* Same, in the newest file format: HDF5 then checksums its own metadata too (used for
 * checkpoints, where a flipped bit must be detected anywhere in the file). */
hid_t h5_create_checksummed(const char *path);
void h5_close_file(hid_t f, const char *path);
/* H5Dclose of a dataset written to (it flushes buffered raw data): dies naming the dataset
 * and the reason (ENOSPC: "No space left on device") if it fails. */
void h5_close_dataset(hid_t d, const char *name, const char *path);
int h5_exists(hid_t loc, const char *name);
/* Creates the groups on the way to name ("a/b/c" creates a and a/b). */
void h5_make_parents(hid_t f, const char *name, const char *path);

int h5_attr_exists(hid_t loc, const char *name);
/* 1 if attribute a holds exactly one integer (safe to read into one variable); never dies. */
int attr_is_one_integer(hid_t a);
int64_t h5_read_attr_int(hid_t loc, const char *name, const char *path);
double h5_read_attr_double(hid_t loc, const char *name, const char *path);
/* An integer attribute that must lie in [lo, hi] (within int): a clear error otherwise
 * (no silent narrowing of 2^32 + 8 to 8). */
int h5_read_attr_int_in(hid_t loc, const char *name, int64_t lo, int64_t hi, const char *path);
/* Reads a string attribute (fixed or variable length) into buf (NUL-terminated). */
void h5_read_attr_str(hid_t loc, const char *name, char *buf, size_t size, const char *path);
void h5_write_attr_int(hid_t loc, const char *name, int64_t v, const char *path);
void h5_write_attr_double(hid_t loc, const char *name, double v, const char *path);
void h5_write_attr_str(hid_t loc, const char *name, const char *v, const char *path);

/* Rank and dims of a dataset (dims has room for 8); dies if missing. Returns the rank. */
int h5_dataset_shape(hid_t f, const char *name, uint64_t *dims, const char *path);
/* Reads a whole float32 dataset whose shape must be exactly dims[0..ndim). */
void h5_read_f32(hid_t f, const char *name, float *buf, int ndim, const uint64_t *dims,
                 const char *path);
void h5_read_f64(hid_t f, const char *name, double *buf, int ndim, const uint64_t *dims,
                 const char *path);
/* Reads a whole integer dataset (any integer dtype, converted) of shape dims. */
void h5_read_i32(hid_t f, const char *name, int32_t *buf, int ndim, const uint64_t *dims,
                 const char *path);
void h5_read_i64(hid_t f, const char *name, int64_t *buf, int ndim, const uint64_t *dims,
                 const char *path);
void h5_read_u64(hid_t f, const char *name, uint64_t *buf, int ndim, const uint64_t *dims,
                 const char *path);
void h5_write_i64(hid_t f, const char *name, const int64_t *buf, int ndim,
                  const uint64_t *dims, const char *path);
void h5_write_u64(hid_t f, const char *name, const uint64_t *buf, int ndim,
                  const uint64_t *dims, const char *path);
void h5_write_f32(hid_t f, const char *name, const float *buf, int ndim, const uint64_t *dims,
                  const char *path);
void h5_write_i32(hid_t f, const char *name, const int32_t *buf, int ndim,
                  const uint64_t *dims, const char *path);
void h5_write_u8(hid_t f, const char *name, const uint8_t *buf, int ndim,
                 const uint64_t *dims, const char *path);

/* 64-bit checksum of a byte buffer (multiply-xorshift over 8-byte words). */
uint64_t h5_hash(const void *buf, size_t bytes);
/* Stores h5_hash(buf) as the uint64 attribute "checksum" of dataset name. */
void h5_set_checksum(hid_t f, const char *name, const void *buf, size_t bytes,
                     const char *path);
/* h5_write_f32/_i32/_u8 with the dataset's checksum (as h5_set_checksum). */
void h5_write_f32_summed(hid_t f, const char *name, const float *buf, int ndim,
                         const uint64_t *dims, const char *path);
void h5_write_i32_summed(hid_t f, const char *name, const int32_t *buf, int ndim,
                         const uint64_t *dims, const char *path);
void h5_write_u8_summed(hid_t f, const char *name, const uint8_t *buf, int ndim,
                        const uint64_t *dims, const char *path);
/* Verifies every dataset of the file that has a "checksum" attribute and that every dataset
 * has one. Never dies: returns 0 if all good, else -1 with a reason in why. */
int h5_verify_checksums(hid_t f, char *why, size_t size);

#endif
