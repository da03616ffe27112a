/*===- BackendPlugin.h - C ABI of device backend plugins --------*- C -*-===//
 *
 * A device backend (the CUDA one: libloom_cuda.so) is a shared library that
 * the runtime loads with dlopen, so that one runtime build runs with or
 * without the device's libraries. This C table is the only interface
 * between the runtime and a plugin. The plugin exports one C function,
 *
 *   int loomCreateBackendPlugin(const char *options, LoomBackendPlugin *out,
 *                               char *error, size_t errorSize);
 *
 * which fills a table of C function pointers: memory, copies, streams and
 * events, kernels by opcode, and (when built with NCCL) communicators. Only
 * C types cross the boundary. Every function returns 0 on success or a
 * nonzero LoomStatus; `lastError` then describes the failure (per thread).
 *
 * Kernels are named by the opcodes of the program format (Opcode.h); their
 * operands and attributes follow docs/OpSemantics.md and the CPU backend.
 * `prepare` checks that the plugin can run a call and sizes its scratch;
 * `run` enqueues it on a stream (asynchronously).
 *
 * Host side (C++, no device headers): loadBackendPlugin() finds and loads a
 * plugin and wraps the table as a loom::runtime::Backend (createBackend()
 * calls it for every backend but "cpu"); createNcclCommunicators() builds
 * NCCL communicators on top of it.
 *
 *===----------------------------------------------------------------------===*/

#ifndef LOOM_RUNTIME_BACKENDPLUGIN_H
#define LOOM_RUNTIME_BACKENDPLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Bumped on any incompatible change of the structs below. */
#define LOOM_BACKEND_PLUGIN_ABI 2

#define LOOM_PLUGIN_MAX_RANK 8
#define LOOM_NCCL_UNIQUE_ID_BYTES 128

typedef enum LoomStatus {
  LOOM_OK = 0,
  LOOM_ERROR = 1,            /* a device or library call failed */
  LOOM_UNSUPPORTED = 2,      /* no kernel for this opcode / dtypes / shapes */
  LOOM_INVALID_ARGUMENT = 3, /* bad arguments */
  LOOM_DATA_ERROR = 4,       /* a run-time data error: an id out of range */
  LOOM_TIMEOUT = 5,          /* a communicator missed its deadline */
  LOOM_NO_DEVICE = 6         /* no usable device (no GPU, no driver) */
} LoomStatus;

/** Element types: the values of loom::runtime::DType. */
typedef enum LoomDType {
  LOOM_F32 = 0,
  LOOM_BF16 = 1,
  LOOM_F16 = 2,
  LOOM_I32 = 3,
  LOOM_I64 = 4
} LoomDType;

/** Reductions of collectives and of the reduce op. */
typedef enum LoomReduce {
  LOOM_REDUCE_SUM = 0,
  LOOM_REDUCE_MAX = 1,
  LOOM_REDUCE_MIN = 2,
  LOOM_REDUCE_AVG = 3 /* "mean" */
} LoomReduce;

typedef struct LoomTensor {
  void *data; /* device memory */
  uint8_t dtype;
  int32_t rank;
  int64_t shape[LOOM_PLUGIN_MAX_RANK];
} LoomTensor;

/** Most attributes an instruction has (the op table's limit). */
#define LOOM_MAX_ATTRS 8

/** One decoded attribute, resolved for the rank. */
typedef struct LoomAttrValue {
  double f;  /* Float */
  int64_t i; /* Int; Bool (0 or 1); String: the index of its value */
  int64_t ints[LOOM_PLUGIN_MAX_RANK]; /* Ints */
  int32_t numInts;
  /* 0 when the instruction omits an optional attribute without a default. */
  int32_t present;
} LoomAttrValue;

/** An instruction's attributes, each at its slot in the op table
 * (loom/runtime/Opcode.h: attr::Scale::factor, ...). Dimension attributes
 * are normalized to be non-negative; string values are indices
 * (attr::GeluApproximation::tanh, ...). */
typedef struct LoomKernelAttrs {
  LoomAttrValue values[LOOM_MAX_ATTRS];
} LoomKernelAttrs;

typedef struct LoomKernelCall {
  uint16_t opcode; /* loom::runtime::Opcode */
  uint32_t index;  /* instruction index, for messages */
  int32_t numIn, numOut;
  const LoomTensor *in;  /* numIn operands */
  const LoomTensor *out; /* numOut results */
  LoomKernelAttrs attrs;
  void *scratch; /* device memory of at least the prepared size */
  size_t scratchBytes;
} LoomKernelCall;

typedef void *LoomStream;
typedef void *LoomEvent;
typedef void *LoomComm;

typedef enum LoomStreamKind {
  LOOM_STREAM_COMPUTE = 0,
  LOOM_STREAM_COMM = 1
} LoomStreamKind;

typedef struct LoomBackendPlugin {
  uint32_t abiVersion; /* LOOM_BACKEND_PLUGIN_ABI */
  uint32_t structSize; /* sizeof(LoomBackendPlugin) */
  const char *name;    /* "cuda" */
  void *self;          /* passed back to every function */

  /** Description of the last failure on this thread ("" if none). */
  const char *(*lastError)(void *self);
  /** Releases everything; `self` is invalid afterwards. */
  void (*destroy)(void *self);
  /** A one-line description of the device ("NVIDIA H100, sm_90, 80 GiB"). */
  const char *(*deviceName)(void *self);

  /* Memory. Copies are synchronous when `stream` is null, else enqueued. */
  int (*allocate)(void *self, size_t bytes, void **ptr);
  int (*deallocate)(void *self, void *ptr);
  int (*copyHostToDevice)(void *self, void *dst, const void *src, size_t bytes,
                          LoomStream stream);
  int (*copyDeviceToHost)(void *self, void *dst, const void *src, size_t bytes,
                          LoomStream stream);
  int (*copyDeviceToDevice)(void *self, void *dst, const void *src,
                            size_t bytes, LoomStream stream);

  /* Streams and events. */
  int (*createStream)(void *self, int kind, LoomStream *out);
  int (*destroyStream)(void *self, LoomStream stream);
  int (*synchronizeStream)(void *self, LoomStream stream);
  int (*createEvent)(void *self, LoomEvent *out);
  int (*destroyEvent)(void *self, LoomEvent event);
  int (*recordEvent)(void *self, LoomEvent event, LoomStream stream);
  int (*streamWaitEvent)(void *self, LoomStream stream, LoomEvent event);

  /* Kernels. `prepare` returns LOOM_UNSUPPORTED (with lastError) if the
   * plugin cannot run the call, else sets *scratchBytes. */
  int (*prepare)(void *self, const LoomKernelCall *call, size_t *scratchBytes);
  int (*run)(void *self, const LoomKernelCall *call, LoomStream stream);

  /* Communicators (NCCL); null when the plugin was built without NCCL.
   * Each rank of a group calls commInit with the same unique id (made by
   * one of them with commUniqueId). Collectives are enqueued on `stream`;
   * commWait waits for the stream, polling the communicator for
   * asynchronous errors, and aborts it after `timeoutMs` (LOOM_TIMEOUT).
   * Counts are elements; dtype is LoomDType; op is LoomReduce.
   * When commInit or commWait fail (LOOM_TIMEOUT, an asynchronous NCCL
   * error), the communicator has been aborted and freed: do not use or
   * destroy it again. */
  int (*commUniqueId)(void *self, char id[LOOM_NCCL_UNIQUE_ID_BYTES]);
  int (*commInit)(void *self, const char id[LOOM_NCCL_UNIQUE_ID_BYTES],
                  int nranks, int rank, int64_t timeoutMs, LoomComm *out);
  int (*commDestroy)(void *self, LoomComm comm, int abort);
  int (*commAllReduce)(void *self, LoomComm comm, const void *send, void *recv,
                       size_t count, int dtype, int op, LoomStream stream);
  int (*commAllGather)(void *self, LoomComm comm, const void *send, void *recv,
                       size_t count, int dtype, LoomStream stream);
  int (*commReduceScatter)(void *self, LoomComm comm, const void *send,
                           void *recv, size_t count, int dtype, int op,
                           LoomStream stream);
  int (*commBroadcast)(void *self, LoomComm comm, void *data, size_t count,
                       int dtype, int root, LoomStream stream);
  int (*commSend)(void *self, LoomComm comm, const void *data, size_t bytes,
                  int peer, LoomStream stream);
  int (*commRecv)(void *self, LoomComm comm, void *data, size_t bytes, int peer,
                  LoomStream stream);
  int (*commGroupStart)(void *self);
  int (*commGroupEnd)(void *self);
  int (*commWait)(void *self, LoomComm comm, LoomStream stream,
                  int64_t timeoutMs);
} LoomBackendPlugin;

/** The name of the entry point every plugin exports. */
#define LOOM_BACKEND_PLUGIN_ENTRY "loomCreateBackendPlugin"

/** The plugin's entry point (options, for CUDA: "device=N"). Fills `out`,
 * or returns a nonzero LoomStatus with a message in `error`. */
typedef int (*LoomCreateBackendPluginFn)(const char *options,
                                         LoomBackendPlugin *out, char *error,
                                         size_t errorSize);

#ifdef __cplusplus
} /* extern "C" */

#include <memory>
#include <string>

namespace loom::runtime {

class Backend;

/// Loads the backend plugin `name` ("cuda": libloom_cuda.so) or the plugin
/// file at a path (any name containing '/') and returns it as a Backend.
/// A name is looked up in $LOOM_BACKEND_PATH (a ':'-separated list), next
/// to the runtime's own library, next to the running executable and in its
/// ../lib, then on the dynamic loader's path. Throws std::runtime_error
/// saying which of these failed: the plugin is missing (the runtime was
/// built without it), a library it needs is missing, or it found no device.
/// CUDA `options`: "device=N" (default: LOCAL_RANK modulo the device count).
std::unique_ptr<Backend> loadBackendPlugin(const std::string &nameOrPath,
                                           const std::string &options = "");

/// Wraps an already filled plugin table (e.g. a test double) as a Backend;
/// the Backend owns the table and calls its destroy().
std::unique_ptr<Backend> wrapBackendPlugin(const LoomBackendPlugin &plugin);

/// The plugin table behind a Backend made by loadBackendPlugin() or
/// wrapBackendPlugin(), or null for any other backend.
const LoomBackendPlugin *backendPlugin(const Backend &backend);

} // namespace loom::runtime
#endif

#endif /* LOOM_RUNTIME_BACKENDPLUGIN_H */
