/* kv._native: the hot read path of the kv Python module, as a CPython extension.
 *
 * kv.Bucket (python/kv/__init__.py) subclasses _native.BucketCore, so `bucket.get(key)` is a C
 * method called through vectorcall: no Python frame, no cffi argument conversion, the key's bytes
 * passed as they are and the value copied once from the library's buffer into the result. The
 * other calls stay in cffi (ABI mode), which loads the very library this module is linked
 * against: library_path() names it, so both sides share one libkvclient (one set of handles, one
 * thread-local kv_last_error()).
 *
 * Contracts:
 *   BucketCore._bind(address)  the kv_bucket* (an integer address, 0 for none) get() reads from.
 *                              The owner (kv.Bucket) binds it after kv_bucket_open and unbinds it
 *                              before kv_bucket_close. A Bucket is for one thread at a time (kv.h);
 *                              the GIL is held throughout get().
 *   BucketCore.get(key, default=<missing>)
 *                              the value of key as bytes (key: bytes, or str encoded as UTF-8);
 *                              default when the key is absent and a default was given; otherwise
 *                              every failure is raised by the function set_raiser() installed,
 *                              called with the negative C code (it reads kv_last_error()).
 *   set_raiser(fn)             fn(rc) raises the kv.Error subclass of rc.
 *   library_path()             the path of the libkvclient this module uses.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
/* After Python.h, which must come first. */
#include <dlfcn.h>
#include <kv/kv.h>

/* Values up to this size are read into the stack without an allocation by the library. */
#define KV_NATIVE_STACK_BUFFER 4096

static PyObject* g_raiser; /* kv._raise: raises the exception of a C code */

typedef struct {
  PyObject ob_base; /* what PyObject_HEAD expands to */
  kv_bucket* handle;
} BucketCore;

/* Raises the exception of rc through the installed raiser; always returns NULL. */
static PyObject* RaiseCode(int rc) {
  if (g_raiser == NULL) {
    PyErr_Format(PyExc_RuntimeError, "kv._native: no raiser installed (code %d)", rc);
    return NULL;
  }
  PyObject* result = PyObject_CallFunction(g_raiser, "i", rc);
  if (result != NULL) { /* the raiser must raise; it returned instead */
    Py_DECREF(result);
    PyErr_Format(PyExc_RuntimeError, "kv._native: raiser returned for code %d", rc);
  }
  return NULL;
}

/* The bytes of key (bytes, or str as UTF-8) in *data and *size; 0, or -1 with an exception set. */
static int KeyBytes(PyObject* key, const char** data, Py_ssize_t* size) {
  if (PyBytes_Check(key)) {
    *data = PyBytes_AS_STRING(key);
    *size = PyBytes_GET_SIZE(key);
    return 0;
  }
  if (PyUnicode_Check(key)) {
    *data = PyUnicode_AsUTF8AndSize(key, size); /* cached in the str object */
    return *data == NULL ? -1 : 0;
  }
  PyErr_Format(PyExc_TypeError, "key must be bytes or str, not %.100s", Py_TYPE(key)->tp_name);
  return -1;
}

/* A value larger than the stack buffer: the library allocates exactly its size. */
static PyObject* GetLarge(BucketCore* self, const char* key, Py_ssize_t key_size, PyObject* dflt) {
  void* value = NULL;
  size_t value_size = 0;
  int rc = kv_get(self->handle, key, (size_t)key_size, &value, &value_size);
  if (rc == KV_OK) {
    PyObject* result = PyBytes_FromStringAndSize(value, (Py_ssize_t)value_size);
    kv_free(value);
    return result;
  }
  if (rc == KV_NOTFOUND && dflt != NULL) { /* deleted since the first read */
    Py_INCREF(dflt);
    return dflt;
  }
  return RaiseCode(rc);
}

static PyObject* BucketCore_get(BucketCore* self, PyObject* const* args, Py_ssize_t nargs,
                                PyObject* kwnames) {
  PyObject* key = NULL;
  PyObject* dflt = NULL;
  if (nargs > 2) {
    PyErr_Format(PyExc_TypeError, "get() takes at most 2 arguments (%zd given)", nargs);
    return NULL;
  }
  if (nargs >= 1) key = args[0];
  if (nargs == 2) dflt = args[1];
  if (kwnames != NULL) {
    Py_ssize_t n = PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* name = PyTuple_GET_ITEM(kwnames, i);
      PyObject** slot = NULL;
      if (PyUnicode_CompareWithASCIIString(name, "key") == 0) slot = &key;
      if (PyUnicode_CompareWithASCIIString(name, "default") == 0) slot = &dflt;
      if (slot == NULL) {
        PyErr_Format(PyExc_TypeError, "get() got an unexpected keyword argument '%U'", name);
        return NULL;
      }
      if (*slot != NULL) {
        PyErr_Format(PyExc_TypeError, "get() got multiple values for argument '%U'", name);
        return NULL;
      }
      *slot = args[nargs + i];
    }
  }
  if (key == NULL) {
    PyErr_SetString(PyExc_TypeError, "get() missing required argument 'key'");
    return NULL;
  }
  const char* k;
  Py_ssize_t k_size;
  if (KeyBytes(key, &k, &k_size) != 0) return NULL;

  char buffer[KV_NATIVE_STACK_BUFFER];
  size_t size = 0;
  int rc = kv_get_buf(self->handle, k, (size_t)k_size, buffer, sizeof buffer, &size);
  if (rc == KV_OK) return PyBytes_FromStringAndSize(buffer, (Py_ssize_t)size);
  if (rc == KV_NOTFOUND && dflt != NULL) {
    Py_INCREF(dflt);
    return dflt;
  }
  /* TOO_LARGE with the value's size: the value, not the key, is larger than the buffer. */
  if (rc == KV_TOO_LARGE && size > sizeof buffer) return GetLarge(self, k, k_size, dflt);
  return RaiseCode(rc);
}

static PyObject* BucketCore_bind(BucketCore* self, PyObject* address) {
  void* handle = PyLong_AsVoidPtr(address);
  if (handle == NULL && PyErr_Occurred()) return NULL;
  self->handle = (kv_bucket*)handle;
  Py_RETURN_NONE;
}

static PyMethodDef kBucketCoreMethods[] = {
    {"get", (PyCFunction)(void (*)(void))BucketCore_get, METH_FASTCALL | METH_KEYWORDS,
     "get(key, default=<missing>): the value of key as bytes; kv.NotFoundError if absent, "
     "unless a default is given."},
    {"_bind", (PyCFunction)BucketCore_bind, METH_O,
     "_bind(address): the kv_bucket* get() reads from (0: none)."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot kBucketCoreSlots[] = {
    {Py_tp_doc, (void*)"The C part of kv.Bucket: its read path."},
    {Py_tp_methods, kBucketCoreMethods},
    {Py_tp_new, (void*)PyType_GenericNew},
    {0, NULL},
};

static PyType_Spec kBucketCoreSpec = {
    .name = "kv._native.BucketCore",
    .basicsize = sizeof(BucketCore),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = kBucketCoreSlots,
};

static PyObject* SetRaiser(PyObject* module, PyObject* fn) {
  (void)module;
  if (!PyCallable_Check(fn)) {
    PyErr_SetString(PyExc_TypeError, "set_raiser() needs a callable");
    return NULL;
  }
  Py_INCREF(fn);
  Py_XSETREF(g_raiser, fn);
  Py_RETURN_NONE;
}

static PyObject* LibraryPath(PyObject* module, PyObject* unused) {
  (void)module;
  (void)unused;
  Dl_info info;
  if (dladdr((void*)&kv_get_buf, &info) == 0 || info.dli_fname == NULL) {
    PyErr_SetString(PyExc_OSError, "kv._native: cannot tell which libkvclient is loaded");
    return NULL;
  }
  return PyUnicode_DecodeFSDefault(info.dli_fname);
}

static PyMethodDef kModuleMethods[] = {
    {"set_raiser", SetRaiser, METH_O, "set_raiser(fn): fn(rc) raises the kv.Error of rc."},
    {"library_path", LibraryPath, METH_NOARGS, "The path of the libkvclient this module uses."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef kModule = {
    PyModuleDef_HEAD_INIT,
    .m_name = "kv._native",
    .m_doc = "The hot read path of the kv module (see kv.Bucket).",
    .m_size = -1,
    .m_methods = kModuleMethods,
};

PyMODINIT_FUNC PyInit__native(void) {
  PyObject* module = PyModule_Create(&kModule);
  if (module == NULL) return NULL;
  PyObject* type = PyType_FromSpec(&kBucketCoreSpec);
  if (type == NULL || PyModule_AddObject(module, "BucketCore", type) != 0) {
    Py_XDECREF(type);
    Py_DECREF(module);
    return NULL;
  }
  return module;
}
