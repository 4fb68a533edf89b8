// MPI for Swift: the handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE, …) are macros
// over implementation globals that Swift cannot import, so every call the MPOMPI target makes
// goes through one of these inline wrappers. MPI-3 only; Open MPI and MPICH both provide it.
#ifndef MPO_MPI_SHIM_H
#define MPO_MPI_SHIM_H
#include <mpi.h>
#include <stdint.h>

/// MPI_Init_thread(FUNNELED) (only the main thread calls MPI), errors returned instead of fatal.
static inline int mpo_mpi_init(void) {
    int provided = 0;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return rc;
    return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

static inline int mpo_mpi_initialized(void) { int flag = 0; MPI_Initialized(&flag); return flag; }
static inline int mpo_mpi_finalized(void) { int flag = 0; MPI_Finalized(&flag); return flag; }

static inline int mpo_mpi_rank(int *rank) { return MPI_Comm_rank(MPI_COMM_WORLD, rank); }
static inline int mpo_mpi_size(int *size) { return MPI_Comm_size(MPI_COMM_WORLD, size); }

/// This process's rank among the processes that share its memory (its node).
static inline int mpo_mpi_local_rank(int *rank) {
    MPI_Comm local;
    int rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
    if (rc != MPI_SUCCESS) return rc;
    rc = MPI_Comm_rank(local, rank);
    MPI_Comm_free(&local);
    return rc;
}

static inline int mpo_mpi_allreduce_sum_float(float *values, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

static inline int mpo_mpi_allreduce_sum_double(double *values, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

static inline int mpo_mpi_allreduce_max_uint64(uint64_t *values, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
}

static inline int mpo_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static inline int mpo_mpi_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }
static inline int mpo_mpi_finalize(void) { return MPI_Finalize(); }

/// The library's text for an error code, into `buffer` (at least MPI_MAX_ERROR_STRING bytes).
static inline void mpo_mpi_error_string(int code, char *buffer, int capacity) {
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
    if (length >= capacity) length = capacity - 1;
    for (int i = 0; i < length; i++) buffer[i] = text[i];
    buffer[length < 0 ? 0 : length] = 0;
}

/// The library's version line (e.g. "Open MPI v4.1.4, …"), into `buffer`.
static inline void mpo_mpi_library_version(char *buffer, int capacity) {
    char text[MPI_MAX_LIBRARY_VERSION_STRING];
    int length = 0;
    if (MPI_Get_library_version(text, &length) != MPI_SUCCESS) length = 0;
    if (length >= capacity) length = capacity - 1;
    for (int i = 0; i < length; i++) buffer[i] = text[i];
    buffer[length < 0 ? 0 : length] = 0;
}
#endif
