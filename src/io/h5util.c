#include "h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common.h"

void h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

int h5_locked_by_other(const char *path) {
    if (rt_not_regular(path)) return 0; /* a FIFO would block open() */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) return 0;
    int locked = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    return locked;
}

hid_t h5_open_read(const char *path, const char *what) {
    const char *odd = rt_not_regular(path);
    if (odd) rt_die(EXIT_INPUT, "%s '%s': is %s, expected a regular (HDF5) file", what, path, odd);
    if (access(path, R_OK) != 0)
        rt_die(EXIT_INPUT, "%s '%s': cannot read it (%s)", what, path, strerror(errno));
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) rt_die(EXIT_INPUT, "%s '%s': not an HDF5 file", what, path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0 && h5_locked_by_other(path))
        rt_die(EXIT_INPUT, "%s '%s': another process holds it open for writing (HDF5's file "
               "lock); wait for it, or set HDF5_USE_FILE_LOCKING=FALSE if that is safe", what,
               path);
    if (f < 0) rt_die(EXIT_INPUT, "%s '%s': HDF5 cannot open it (damaged?)", what, path);
    return f;
}

hid_t h5_open_dataset_file(const char *path, const char *format, const char *hint) {
    hid_t f = h5_open_read(path, "data file");
    char fmt[64];
    h5_read_attr_str(f, "format", fmt, sizeof fmt, path);
    if (strcmp(fmt, format) != 0)
        rt_die(EXIT_INPUT, "data file '%s': format is '%s', expected '%s' (%s)", path, fmt, format,
               hint);
    int64_t version = h5_read_attr_int(f, "version", path);
    if (version != 1)
        rt_die(EXIT_INPUT, "data file '%s': format version %lld, this rnntrain reads version 1",
               path, (long long)version);
    return f;
}

/* Every file in the latest format: its metadata carries checksums, so a flipped bit in a
 * header is an error when the file is opened (the old format let HDF5 1.10 read past its
 * buffers on some corrupted object headers: tests/fuzz). */
/* The reason of a failed write: the system error HDF5 saw (errno), when it set one. */
static const char *write_reason(void) { return errno ? strerror(errno) : "HDF5 gave no reason"; }

hid_t h5_create(const char *path) { return h5_create_checksummed(path); }

hid_t h5_create_checksummed(const char *path) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    errno = 0;
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0) rt_die(EXIT_RUNTIME, "cannot create HDF5 file '%s': %s", path, write_reason());
    return f;
}

void h5_close_file(hid_t f, const char *path) {
    errno = 0;
    if (H5Fclose(f) < 0)
        rt_die(EXIT_RUNTIME, "closing HDF5 file '%s' failed: %s", path, write_reason());
}

int h5_exists(hid_t loc, const char *name) {
    /* H5Lexists fails on a missing intermediate group: walk the path. */
    char buf[512];
    snprintf(buf, sizeof buf, "%s", name);
    for (char *p = buf; (p = strchr(p + 1, '/')) != NULL;) {
        *p = 0;
        if (buf[0] && H5Lexists(loc, buf, H5P_DEFAULT) <= 0) return 0;
        *p = '/';
    }
    return H5Lexists(loc, buf, H5P_DEFAULT) > 0;
}

void h5_make_parents(hid_t f, const char *name, const char *path) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", name);
    for (char *p = buf; (p = strchr(p + 1, '/')) != NULL;) {
        *p = 0;
        if (buf[0] && H5Lexists(f, buf, H5P_DEFAULT) <= 0) {
            errno = 0;
            hid_t g = H5Gcreate2(f, buf, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (g < 0)
                rt_die(EXIT_RUNTIME, "%s: cannot create group '%s': %s", path, buf,
                       write_reason());
            H5Gclose(g);
        }
        *p = '/';
    }
}

int h5_attr_exists(hid_t loc, const char *name) { return H5Aexists(loc, name) > 0; }

static hid_t open_attr(hid_t loc, const char *name, const char *path) {
    if (!h5_attr_exists(loc, name))
        rt_die(EXIT_INPUT, "%s: attribute '%s' is missing (not a file written by rnntrain?)",
               path, name);
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) rt_die(EXIT_INPUT, "%s: cannot open attribute '%s'", path, name);
    return a;
}

int attr_is_one_integer(hid_t a) {
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    int ok = t >= 0 && sp >= 0 && H5Tget_class(t) == H5T_INTEGER &&
             H5Sget_simple_extent_npoints(sp) == 1;
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    return ok;
}

/* An attribute read into one variable must hold one value (an array would overflow it). */
static void expect_scalar(hid_t a, const char *name, const char *what, const char *path) {
    hid_t sp = H5Aget_space(a);
    hssize_t count = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    if (count != 1)
        rt_die(EXIT_INPUT, "%s: attribute '%s' should be one %s, found %lld values", path, name,
               what, (long long)count);
}

int64_t h5_read_attr_int(hid_t loc, const char *name, const char *path) {
    hid_t a = open_attr(loc, name, path);
    hid_t t = H5Aget_type(a);
    if (H5Tget_class(t) != H5T_INTEGER)
        rt_die(EXIT_INPUT, "%s: attribute '%s' should be an integer", path, name);
    expect_scalar(a, name, "integer", path);
    if (H5Tget_sign(t) == H5T_SGN_NONE && H5Tget_size(t) >= 8) { /* above INT64_MAX? */
        uint64_t u = 0;
        if (H5Aread(a, H5T_NATIVE_UINT64, &u) < 0 || u > (uint64_t)INT64_MAX)
            rt_die(EXIT_INPUT, "%s: attribute '%s' does not fit a 64-bit signed integer", path,
                   name);
    }
    int64_t v = 0;
    if (H5Aread(a, H5T_NATIVE_INT64, &v) < 0)
        rt_die(EXIT_INPUT, "%s: cannot read attribute '%s'", path, name);
    H5Tclose(t);
    H5Aclose(a);
    return v;
}

int h5_read_attr_int_in(hid_t loc, const char *name, int64_t lo, int64_t hi, const char *path) {
    int64_t v = h5_read_attr_int(loc, name, path);
    if (v < lo || v > hi)
        rt_die(EXIT_INPUT, "%s: attribute '%s' is %lld, expected %lld to %lld", path, name,
               (long long)v, (long long)lo, (long long)hi);
    return (int)v;
}

double h5_read_attr_double(hid_t loc, const char *name, const char *path) {
    hid_t a = open_attr(loc, name, path);
    hid_t t = H5Aget_type(a);
    H5T_class_t cls = H5Tget_class(t);
    H5Tclose(t);
    if (cls != H5T_FLOAT && cls != H5T_INTEGER)
        rt_die(EXIT_INPUT, "%s: attribute '%s' should be a number", path, name);
    expect_scalar(a, name, "number", path);
    double v = 0;
    if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0)
        rt_die(EXIT_INPUT, "%s: cannot read attribute '%s' as a number", path, name);
    H5Aclose(a);
    return v;
}

void h5_read_attr_str(hid_t loc, const char *name, char *buf, size_t size, const char *path) {
    hid_t a = open_attr(loc, name, path);
    hid_t t = H5Aget_type(a);
    if (H5Tget_class(t) != H5T_STRING)
        rt_die(EXIT_INPUT, "%s: attribute '%s' should be a string", path, name);
    /* one string, not an array of them (the reads below have room for one) */
    hid_t sp = H5Aget_space(a);
    hssize_t count = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    if (count != 1)
        rt_die(EXIT_INPUT, "%s: attribute '%s' should be one string, found %lld", path, name,
               (long long)count);
    if (H5Tis_variable_str(t) > 0) {
        char *s = NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t)); /* h5py writes UTF-8: no ASCII <-> UTF-8 conversion */
        if (H5Aread(a, mt, &s) < 0 || !s)
            rt_die(EXIT_INPUT, "%s: cannot read attribute '%s' (a variable-length string "
                   "HDF5 could not read: damaged?)", path, name);
        snprintf(buf, size, "%s", s);
        H5free_memory(s);
        H5Tclose(mt);
    } else {
        /* one byte more than the file's size: a null-padded (h5py) string that fills its
         * n bytes keeps its last character when converted to a null-terminated one */
        size_t n = H5Tget_size(t);
        char *tmp = rt_calloc(n + 1, 1, "attribute");
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, n + 1);
        H5Tset_cset(mt, H5Tget_cset(t));
        if (H5Aread(a, mt, tmp) < 0)
            rt_die(EXIT_INPUT, "%s: cannot read attribute '%s' (a %zu-byte string HDF5 could "
                   "not read: damaged?)", path, name, n);
        snprintf(buf, size, "%s", tmp);
        free(tmp);
        H5Tclose(mt);
    }
    H5Tclose(t);
    H5Aclose(a);
}

static void write_attr(hid_t loc, const char *name, hid_t type, const void *v,
                       const char *path) {
    if (h5_attr_exists(loc, name)) H5Adelete(loc, name);
    hid_t s = H5Screate(H5S_SCALAR);
    errno = 0;
    hid_t a = H5Acreate2(loc, name, type, s, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, type, v) < 0)
        rt_die(EXIT_RUNTIME, "%s: cannot write attribute '%s': %s", path, name, write_reason());
    H5Aclose(a);
    H5Sclose(s);
}

void h5_write_attr_int(hid_t loc, const char *name, int64_t v, const char *path) {
    write_attr(loc, name, H5T_NATIVE_INT64, &v, path);
}
void h5_write_attr_double(hid_t loc, const char *name, double v, const char *path) {
    write_attr(loc, name, H5T_NATIVE_DOUBLE, &v, path);
}
void h5_write_attr_str(hid_t loc, const char *name, const char *v, const char *path) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    write_attr(loc, name, t, v, path);
    H5Tclose(t);
}

int h5_dataset_shape(hid_t f, const char *name, uint64_t *dims, const char *path) {
    if (!h5_exists(f, name)) rt_die(EXIT_INPUT, "%s: dataset '%s' is missing", path, name);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) rt_die(EXIT_INPUT, "%s: '%s' is not a dataset", path, name);
    hid_t s = H5Dget_space(d);
    int nd = H5Sget_simple_extent_ndims(s);
    if (nd < 0 || nd > 8) rt_die(EXIT_INPUT, "%s: dataset '%s' has a bad shape", path, name);
    hsize_t hd[8];
    H5Sget_simple_extent_dims(s, hd, NULL);
    for (int i = 0; i < nd; i++) dims[i] = hd[i];
    H5Sclose(s);
    H5Dclose(d);
    return nd;
}

static void shape_str(char *buf, size_t size, int nd, const uint64_t *dims) {
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < nd && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ",%llu" : "%llu",
                                 (unsigned long long)dims[i]);
    if (used < size) snprintf(buf + used, size - used, nd == 1 ? ",)" : ")");
}

static void read_checked(hid_t f, const char *name, void *buf, hid_t memtype,
                         H5T_class_t want, int ndim, const uint64_t *dims, const char *path) {
    uint64_t have[8];
    int nd = h5_dataset_shape(f, name, have, path);
    int same = nd == ndim;
    for (int i = 0; same && i < nd; i++) same = have[i] == dims[i];
    if (!same) {
        char a[128], b[128];
        shape_str(a, sizeof a, ndim, dims);
        shape_str(b, sizeof b, nd, have);
        rt_die(EXIT_INPUT, "%s: dataset '%s' should have shape %s, found %s", path, name, a,
               b);
    }
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    hid_t t = H5Dget_type(d);
    H5T_class_t cls = H5Tget_class(t);
    if (cls != want)
        rt_die(EXIT_INPUT, "%s: dataset '%s' should hold %s, found another type", path, name,
               want == H5T_FLOAT ? "floats" : "integers");
    if (H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        rt_die(EXIT_INPUT, "%s: reading dataset '%s' failed (damaged file?)", path, name);
    H5Tclose(t);
    H5Dclose(d);
}

/* The typed whole-dataset readers of h5util.h. */
#define H5_READER(fn, ctype, memtype, cls)                                                 \
    void fn(hid_t f, const char *name, ctype *buf, int ndim, const uint64_t *dims,         \
            const char *path) {                                                            \
        read_checked(f, name, buf, memtype, cls, ndim, dims, path);                        \
    }
H5_READER(h5_read_f32, float, H5T_NATIVE_FLOAT, H5T_FLOAT)
H5_READER(h5_read_f64, double, H5T_NATIVE_DOUBLE, H5T_FLOAT)
H5_READER(h5_read_i32, int32_t, H5T_NATIVE_INT32, H5T_INTEGER)
H5_READER(h5_read_i64, int64_t, H5T_NATIVE_INT64, H5T_INTEGER)
H5_READER(h5_read_u64, uint64_t, H5T_NATIVE_UINT64, H5T_INTEGER)

static void write_ds(hid_t f, const char *name, const void *buf, hid_t filetype,
                     hid_t memtype, int ndim, const uint64_t *dims, const char *path) {
    hsize_t hd[8];
    for (int i = 0; i < ndim; i++) hd[i] = dims[i];
    h5_make_parents(f, name, path);
    hid_t s = H5Screate_simple(ndim, hd, NULL);
    errno = 0;
    hid_t d = H5Dcreate2(f, name, filetype, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d < 0 || H5Dwrite(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        rt_die(EXIT_RUNTIME, "%s: cannot write dataset '%s': %s", path, name, write_reason());
    h5_close_dataset(d, name, path);
    H5Sclose(s);
}

void h5_close_dataset(hid_t d, const char *name, const char *path) {
    errno = 0;
    if (H5Dclose(d) < 0) /* where HDF5 writes out what it buffered: a full disk shows here */
        rt_die(EXIT_RUNTIME, "%s: writing dataset '%s' failed: %s", path, name, write_reason());
}

void h5_write_f32(hid_t f, const char *name, const float *buf, int ndim, const uint64_t *dims,
                  const char *path) {
    write_ds(f, name, buf, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, ndim, dims, path);
}
void h5_write_i32(hid_t f, const char *name, const int32_t *buf, int ndim,
                  const uint64_t *dims, const char *path) {
    write_ds(f, name, buf, H5T_STD_I32LE, H5T_NATIVE_INT32, ndim, dims, path);
}
void h5_write_u8(hid_t f, const char *name, const uint8_t *buf, int ndim,
                 const uint64_t *dims, const char *path) {
    write_ds(f, name, buf, H5T_STD_U8LE, H5T_NATIVE_UINT8, ndim, dims, path);
}

uint64_t h5_hash(const void *buf, size_t bytes) {
    const unsigned char *p = buf;
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)bytes;
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    for (; i < bytes; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    h ^= h >> 29;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 32);
}

void h5_set_checksum(hid_t f, const char *name, const void *buf, size_t bytes,
                     const char *path) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) rt_die(EXIT_RUNTIME, "%s: cannot open '%s' to checksum it", path, name);
    uint64_t h = h5_hash(buf, bytes);
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(d, "checksum", H5T_STD_U64LE, s, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, H5T_NATIVE_UINT64, &h) < 0)
        rt_die(EXIT_RUNTIME, "%s: cannot write the checksum of '%s'", path, name);
    H5Aclose(a);
    H5Sclose(s);
    h5_close_dataset(d, name, path);
}

typedef struct {
    char *why;
    size_t size;
    int bad;
    long checked;
} VerifyState;

static herr_t verify_one(hid_t loc, const char *name, const H5O_info_t *info, void *data) {
    VerifyState *st = data;
    if (info->type != H5O_TYPE_DATASET) return 0;
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) {
        snprintf(st->why, st->size, "dataset '%s' cannot be opened", name);
        st->bad = 1;
        return 1;
    }
    int ok = 0;
    uint64_t want = 0;
    hid_t t = H5Dget_type(d), nt = t >= 0 ? H5Tget_native_type(t, H5T_DIR_DEFAULT) : -1;
    hid_t sp = H5Dget_space(d);
    hssize_t npts = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    size_t tsize = nt >= 0 ? H5Tget_size(nt) : 0;
    if (H5Aexists(d, "checksum") <= 0) {
        snprintf(st->why, st->size, "dataset '%s' has no checksum", name);
    } else {
        hid_t a = H5Aopen(d, "checksum", H5P_DEFAULT);
        if (a < 0 || !attr_is_one_integer(a) || H5Aread(a, H5T_NATIVE_UINT64, &want) < 0)
            snprintf(st->why, st->size, "the checksum of '%s' cannot be read", name);
        else if (npts < 0 || tsize == 0)
            snprintf(st->why, st->size, "dataset '%s' has an unreadable shape or type", name);
        else {
            size_t bytes = (size_t)npts * tsize;
            void *buf = malloc(bytes ? bytes : 1);
            if (!buf)
                snprintf(st->why, st->size, "out of memory verifying '%s'", name);
            else if (H5Dread(d, nt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
                snprintf(st->why, st->size, "dataset '%s' cannot be read (truncated file?)",
                         name);
            else if (h5_hash(buf, bytes) != want)
                snprintf(st->why, st->size, "dataset '%s' fails its checksum (corrupted)", name);
            else
                ok = 1;
            free(buf);
        }
        if (a >= 0) H5Aclose(a);
    }
    if (sp >= 0) H5Sclose(sp);
    if (nt >= 0) H5Tclose(nt);
    if (t >= 0) H5Tclose(t);
    H5Dclose(d);
    st->checked++;
    if (!ok) st->bad = 1;
    return ok ? 0 : 1;
}

int h5_verify_checksums(hid_t f, char *why, size_t size) {
    VerifyState st = {why, size, 0, 0};
    why[0] = 0;
    herr_t rc = H5Ovisit(f, H5_INDEX_NAME, H5_ITER_NATIVE, verify_one, &st);
    if (st.bad) return -1;
    if (rc < 0) {
        snprintf(why, size, "the file's structure cannot be read (truncated or corrupted)");
        return -1;
    }
    if (st.checked == 0) {
        snprintf(why, size, "it holds no datasets");
        return -1;
    }
    return 0;
}

/* write_ds, then the dataset's checksum (h5_set_checksum) over its elem-byte values. */
static void write_summed(hid_t f, const char *name, const void *buf, size_t elem,
                         hid_t filetype, hid_t memtype, int ndim, const uint64_t *dims,
                         const char *path) {
    write_ds(f, name, buf, filetype, memtype, ndim, dims, path);
    size_t bytes = elem;
    for (int i = 0; i < ndim; i++) bytes *= (size_t)dims[i];
    h5_set_checksum(f, name, buf, bytes, path);
}
void h5_write_f32_summed(hid_t f, const char *name, const float *buf, int ndim,
                         const uint64_t *dims, const char *path) {
    write_summed(f, name, buf, 4, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, ndim, dims, path);
}
void h5_write_i32_summed(hid_t f, const char *name, const int32_t *buf, int ndim,
                         const uint64_t *dims, const char *path) {
    write_summed(f, name, buf, 4, H5T_STD_I32LE, H5T_NATIVE_INT32, ndim, dims, path);
}
void h5_write_u8_summed(hid_t f, const char *name, const uint8_t *buf, int ndim,
                        const uint64_t *dims, const char *path) {
    write_summed(f, name, buf, 1, H5T_STD_U8LE, H5T_NATIVE_UINT8, ndim, dims, path);
}

void h5_write_i64(hid_t f, const char *name, const int64_t *buf, int ndim,
                  const uint64_t *dims, const char *path) {
    write_ds(f, name, buf, H5T_STD_I64LE, H5T_NATIVE_INT64, ndim, dims, path);
}
void h5_write_u64(hid_t f, const char *name, const uint64_t *buf, int ndim,
                  const uint64_t *dims, const char *path) {
    write_ds(f, name, buf, H5T_STD_U64LE, H5T_NATIVE_UINT64, ndim, dims, path);
}
