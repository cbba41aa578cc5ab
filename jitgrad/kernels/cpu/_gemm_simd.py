"""Explicit SIMD vectors for the GEMM micro-kernel, as Numba intrinsics.

Why not leave vectorisation to LLVM: a register-tiled micro-kernel needs a
tile of accumulators that live in registers for a whole ``k`` loop, and
LLVM's loop vectoriser only vectorises innermost loops (it would keep the
tile in memory); plain scalar code would need ``8 x 32`` named scalars for
the SLP vectoriser to regroup. So the micro-kernel is written with an
explicit vector type (``<16 x float>`` / ``<8 x double>`` on AVX-512) and a
handful of operations: load, store, broadcast, fused multiply-add.

Why the function attribute: on Skylake-X and later LLVM's x86 back end
prefers 256-bit vectors and splits 512-bit ones into two ymm halves unless
the function says it needs 512-bit vectors (``"min-legal-vector-width"``,
what clang sets for functions using ``_mm512_*`` intrinsics). Every
intrinsic below marks the function it is lowered into; the inliner carries
the largest width over to the function it inlines into.

``VEC_BYTES`` is 64 where the host has AVX-512F and 32 otherwise (AVX2:
the same code, half-width vectors).
"""

from __future__ import annotations

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model


def _host_vector_bytes() -> int:
    try:
        features = llvm.get_host_cpu_features()
        has512 = bool(features.get("avx512f", False))
    except Exception:  # pragma: no cover - unusual host / LLVM build
        has512 = False
    return 64 if has512 else 32


#: Bytes in one SIMD register used by the micro-kernel.
VEC_BYTES: int = _host_vector_bytes()

_WIDTH_ATTR = f'"min-legal-vector-width"="{VEC_BYTES * 8}"'


class SimdVector(types.Type):
    """A SIMD register of ``lanes`` elements of ``dtype`` (a Numba float type)."""

    def __init__(self, dtype: types.Type, lanes: int) -> None:
        self.dtype = dtype
        self.lanes = lanes
        super().__init__(name=f"SimdVector({dtype}x{lanes})")


@register_model(SimdVector)
class _SimdVectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


def _vector_type(dtype: types.Type) -> SimdVector:
    return SimdVector(dtype, VEC_BYTES // (dtype.bitwidth // 8))


def _mark_vector_width(builder: ir.IRBuilder) -> None:
    # llvmlite only accepts enum attributes by name; a string attribute is
    # emitted verbatim, so it is added with set.add past that check.
    attrs = builder.function.attributes
    if _WIDTH_ATTR not in attrs:
        set.add(attrs, _WIDTH_ATTR)


def _element_pointer(context, builder, arrty, arr, index):
    data = context.make_array(arrty)(context, builder, arr).data
    return cgutils.gep(builder, data, index)


def _check_float_array(arr) -> bool:
    return isinstance(arr, types.Array) and isinstance(arr.dtype, types.Float)


@intrinsic
def vload(typingctx, arr, index):
    """``arr[index : index + lanes]`` as a vector (unaligned load)."""
    if not _check_float_array(arr) or not isinstance(index, types.Integer):
        return None
    vt = _vector_type(arr.dtype)

    def codegen(context, builder, sig, args):
        _mark_vector_width(builder)
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        vptr = builder.bitcast(ptr, context.get_value_type(vt).as_pointer())
        return builder.load(vptr, align=arr.dtype.bitwidth // 8)

    return vt(arr, index), codegen


@intrinsic
def vstore(typingctx, arr, index, vec):
    """``arr[index : index + lanes] = vec`` (unaligned store)."""
    if not _check_float_array(arr) or not isinstance(vec, SimdVector) or vec.dtype != arr.dtype:
        return None

    def codegen(context, builder, sig, args):
        _mark_vector_width(builder)
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        vptr = builder.bitcast(ptr, args[2].type.as_pointer())
        builder.store(args[2], vptr, align=arr.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.none(arr, index, vec), codegen


@intrinsic
def vbroadcast(typingctx, x):
    """A vector with every lane equal to the scalar ``x``."""
    if not isinstance(x, types.Float):
        return None
    vt = _vector_type(x)

    def codegen(context, builder, sig, args):
        _mark_vector_width(builder)
        llvt = context.get_value_type(vt)
        i32 = ir.IntType(32)
        one = builder.insert_element(ir.Constant(llvt, ir.Undefined), args[0], ir.Constant(i32, 0))
        mask = ir.Constant(ir.VectorType(i32, vt.lanes), [0] * vt.lanes)
        return builder.shuffle_vector(one, ir.Constant(llvt, ir.Undefined), mask)

    return vt(x), codegen


@intrinsic
def vbroadcast_load(typingctx, arr, index):
    """A vector with every lane equal to ``arr[index]``.

    Unlike ``vbroadcast(arr[index])`` there is no negative-index wraparound
    (Numba's ``arr[i]`` with a signed ``i`` that LLVM cannot prove
    non-negative costs a compare, a shift and a select per access).
    """
    if not _check_float_array(arr) or not isinstance(index, types.Integer):
        return None
    vt = _vector_type(arr.dtype)

    def codegen(context, builder, sig, args):
        _mark_vector_width(builder)
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        llvt = context.get_value_type(vt)
        i32 = ir.IntType(32)
        one = builder.insert_element(ir.Constant(llvt, ir.Undefined), builder.load(ptr), ir.Constant(i32, 0))
        mask = ir.Constant(ir.VectorType(i32, vt.lanes), [0] * vt.lanes)
        return builder.shuffle_vector(one, ir.Constant(llvt, ir.Undefined), mask)

    return vt(arr, index), codegen


@intrinsic
def load(typingctx, arr, index):
    """``arr[index]`` for a 1-D array, without negative-index wraparound (hot loops)."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return builder.load(_element_pointer(context, builder, sig.args[0], args[0], args[1]))

    return arr.dtype(arr, index), codegen


@intrinsic
def store(typingctx, arr, index, value):
    """``arr[index] = value`` for a 1-D array, without negative-index wraparound."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and isinstance(index, types.Integer)
            and isinstance(value, (types.Float, types.Integer))):
        return None

    def codegen(context, builder, sig, args):
        val = context.cast(builder, args[2], sig.args[2], sig.args[0].dtype)
        builder.store(val, _element_pointer(context, builder, sig.args[0], args[0], args[1]))
        return context.get_dummy_value()

    return types.none(arr, index, value), codegen


@intrinsic
def vgather(typingctx, arr, base, offsets, start):
    """Lane ``l`` is ``arr[base + offsets[start + l]]`` (``offsets`` an int32 array).

    One hardware gather: used to pack transposed operands and im2col
    columns, where ``lanes`` values sit in ``lanes`` different rows.
    """
    if not (_check_float_array(arr) and isinstance(offsets, types.Array) and offsets.dtype == types.int32
            and isinstance(base, types.Integer) and isinstance(start, types.Integer)):
        return None
    vt = _vector_type(arr.dtype)

    def codegen(context, builder, sig, args):
        _mark_vector_width(builder)
        lanes = vt.lanes
        i32 = ir.IntType(32)
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        optr = _element_pointer(context, builder, sig.args[2], args[2], args[3])
        ivt = ir.VectorType(i32, lanes)
        idx = builder.load(builder.bitcast(optr, ivt.as_pointer()), align=4)
        llvt = context.get_value_type(vt)
        elem_bits = arr.dtype.bitwidth
        # Vector of addresses: base + offset * itemsize (llvmlite's gep takes no vector index).
        i64v = ir.VectorType(ir.IntType(64), lanes)
        base_int = builder.ptrtoint(ptr, ir.IntType(64))
        base_vec = builder.insert_element(ir.Constant(i64v, ir.Undefined), base_int, ir.Constant(i32, 0))
        base_vec = builder.shuffle_vector(base_vec, ir.Constant(i64v, ir.Undefined),
                                          ir.Constant(ivt, [0] * lanes))
        byte_off = builder.mul(builder.sext(idx, i64v), ir.Constant(i64v, [elem_bits // 8] * lanes))
        ptrs = builder.inttoptr(builder.add(base_vec, byte_off), ir.VectorType(ptr.type, lanes))
        name = f"llvm.masked.gather.v{lanes}f{elem_bits}.v{lanes}p0"
        fnty = ir.FunctionType(llvt, [ptrs.type, i32, ir.VectorType(ir.IntType(1), lanes), llvt])
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)
        mask = ir.Constant(ir.VectorType(ir.IntType(1), lanes), [1] * lanes)
        return builder.call(fn, [ptrs, ir.Constant(i32, elem_bits // 8), mask, ir.Constant(llvt, ir.Undefined)])

    return vt(arr, base, offsets, start), codegen


@intrinsic
def prefetch_write(typingctx, arr, index):
    """Hint the cache hierarchy to fetch the line holding ``arr[index]`` into L1, for writing.

    Write intent (``prefetchw``) because every caller is about to store to
    the line: a read prefetch would fetch it shared and the store would then
    have to ask for ownership again.
    """
    if not (isinstance(arr, types.Array) and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 1), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.none(arr, index), codegen


@intrinsic
def vzero(typingctx, arr):
    """A zero vector of ``arr``'s element type."""
    if not _check_float_array(arr):
        return None
    vt = _vector_type(arr.dtype)

    def codegen(context, builder, sig, args):
        _mark_vector_width(builder)
        return ir.Constant(context.get_value_type(vt), None)

    return vt(arr), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """``a * b + c`` lane by lane, one fused multiply-add."""
    if not (isinstance(a, SimdVector) and a == b == c):
        return None

    def codegen(context, builder, sig, args):
        _mark_vector_width(builder)
        vt = args[0].type
        name = f"llvm.fma.v{vt.count}f{sig.args[0].dtype.bitwidth}"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt, vt, vt]), name)
        return builder.call(fn, args)

    return a(a, b, c), codegen


@intrinsic
def vadd(typingctx, a, b):
    """``a + b`` lane by lane."""
    if not (isinstance(a, SimdVector) and a == b):
        return None

    def codegen(context, builder, sig, args):
        _mark_vector_width(builder)
        return builder.fadd(args[0], args[1])

    return a(a, b), codegen
