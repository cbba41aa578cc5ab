"""Explicit SIMD vectors for the GEMM micro-kernel, as Numba intrinsics.

Why not leave vectorisation to LLVM: a register-tiled micro-kernel needs a
tile of accumulators that live in registers for a whole ``k`` loop, and
LLVM's loop vectoriser only vectorises innermost loops (it would keep the
tile in memory); plain scalar code would need ``8 x 32`` named scalars for
the SLP vectoriser to regroup. So the micro-kernel is written with an
explicit vector type (``<16 x float>`` / ``<8 x double>`` on AVX-512) and a
handful of operations: load, store (whole or lane-masked), broadcast, fused
multiply-add, and for packing a gather and a two-register permute.

Scalar ``load``/``store`` exist because Numba's ``arr[i]`` with a signed
``i`` that LLVM cannot prove non-negative emits negative-index wraparound
(a compare, a shift and a select per access): in the micro-kernel that
held it at ~60% of peak.

Masked stores (rather than scalar edge loops) also keep LLVM from turning
short copy and fill loops into calls to ``memcpy``/``memset``, which cost
more than the copy for rows of a few dozen bytes. Below AVX-512 a masked
store is lowered as straight-line per-lane stores (``MASKED_STORE_FAST``):
AVX2's ``vmaskmovps`` store is microcoded on AMD Zen.

Why the function attribute: on Skylake-X and later LLVM's x86 back end
prefers 256-bit vectors and splits 512-bit ones into two ymm halves unless
the function says it needs 512-bit vectors (``"min-legal-vector-width"``,
what clang sets for functions using ``_mm512_*`` intrinsics). Every
intrinsic below marks the function it is lowered into; the inliner carries
the largest width over to the function it inlines into.

``VEC_BYTES`` is the vector width of the path ``_isa`` picked for the CPU
Numba compiles for: 64 with AVX-512F, 32 with AVX2 + FMA, 16 otherwise (the
same code, narrower vectors; ``_gemm`` and ``_conv`` shrink their register
tiles to match).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from ._isa import ISA


#: Bytes in one SIMD register used by the micro-kernel (see ``_isa``).
VEC_BYTES: int = ISA.vec_bytes

#: True where ``vpermute2`` is a few register instructions, not a gather:
#: AVX-512's two-source permute, or AVX2's one-source ``vpermps`` twice and a blend.
HAS_PERMUTE2: bool = ISA.name in ("avx512", "avx2")

#: True where the CPU has vector gathers (AVX2's ``vgatherdps``, AVX-512's): elsewhere (SSE, NEON) LLVM
#: loads a gather's lanes one by one, and the loop around it may stay scalar (``pooling``).
HAS_GATHER: bool = ISA.name in ("avx512", "avx2")

#: True where ``vfma`` is one instruction; otherwise a multiply and an add.
HAS_FMA: bool = ISA.has_fma

#: True where a lane-masked store is one fast instruction (AVX-512's ``k``-masked stores). AVX2's
#: ``vmaskmovps`` store is microcoded on AMD Zen (~150 cycles measured in the GEMM edge tiles, Zen 3):
#: elsewhere ``vstore_masked`` stores the lanes one by one.
MASKED_STORE_FAST: bool = ISA.name == "avx512"

_WIDTH_ATTR = f'"min-legal-vector-width"="{VEC_BYTES * 8}"'
_I1 = ir.IntType(1)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


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
    if isinstance(arrty, types.CPointer):
        return cgutils.gep(builder, arr, index)
    data = context.make_array(arrty)(context, builder, arr).data
    return cgutils.gep(builder, data, index)


def _is_buffer(arr) -> bool:
    """An array, or a pointer from :func:`data_pointer` (every intrinsic here takes either)."""
    return isinstance(arr, (types.Array, types.CPointer))


def _is_float_array(arr) -> bool:
    return _is_buffer(arr) and isinstance(arr.dtype, types.Float)


@intrinsic
def data_pointer(typingctx, arr):
    """``arr``'s first element as a raw pointer (``CPointer(dtype)``) for the intrinsics here.

    A borrowed reference: nothing counts it, so the caller keeps ``arr``
    alive (an argument of the running function) and in bounds. Why: every
    array Numba binds to a new name, an inlined callee's parameters
    included, is an atomic ``incref`` now and a ``decref`` call later; in
    the GEMM tile loop those calls (ten a tile) made LLVM spill the 16
    accumulators around them: ~150 cycles a tile, half of a shallow
    product's time. A pointer is a plain value.
    """
    if not (isinstance(arr, types.Array) and arr.layout == "C"):
        return None

    def codegen(context, builder, sig, args):
        return context.make_array(sig.args[0])(context, builder, args[0]).data

    return types.CPointer(arr.dtype)(arr), codegen


@intrinsic
def address_to_pointer(typingctx, address, dtype):
    """``address`` (an int64 from ``arr.ctypes.data``) as a ``CPointer`` of ``dtype``'s elements."""
    if not (isinstance(address, types.Integer) and isinstance(dtype, (types.NumberClass, types.DType))):
        return None
    element = dtype.dtype if isinstance(dtype, types.DType) else dtype.instance_type

    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], context.get_value_type(sig.return_type))

    return types.CPointer(element)(address, dtype), codegen


@intrinsic
def vlanes(typingctx, arr):
    """Lanes of one vector of ``arr``'s element type (a constant; ``arr``: an array or a pointer)."""
    if not _is_float_array(arr):
        return None
    lanes = VEC_BYTES // (arr.dtype.bitwidth // 8)

    def codegen(context, builder, sig, args):
        return ir.Constant(_I64, lanes)

    return types.intp(arr), codegen


def _is_int32_array(arr) -> bool:
    return _is_buffer(arr) and arr.dtype == types.int32


def _splat(builder, value, vtype):
    one = builder.insert_element(ir.Constant(vtype, ir.Undefined), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, ir.Constant(vtype, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, vtype.count), [0] * vtype.count))


def _lane_mask(builder, count, lanes):
    """``<lanes x i1>``: lane ``l`` is on when ``l < count``."""
    iv = ir.VectorType(_I64, lanes)
    count = builder.sext(count, _I64) if count.type.width < 64 else count
    return builder.icmp_signed("<", ir.Constant(iv, list(range(lanes))), _splat(builder, count, iv))


def _intrinsic_fn(builder, name, ret, args):
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, args), name)


def _vsuffix(vt: SimdVector) -> str:
    return f"v{vt.lanes}f{vt.dtype.bitwidth}"


def _vector_pointer(context, builder, arrty, arr, index, vt):
    ptr = _element_pointer(context, builder, arrty, arr, index)
    return builder.bitcast(ptr, context.get_value_type(vt).as_pointer())


def _masked_gather(context, builder, vt, base_ptr, offsets_i32, mask):
    """Lane ``l``: ``base_ptr[offsets[l]]`` where ``mask[l]``, else 0."""
    lanes = vt.lanes
    llvt = context.get_value_type(vt)
    i64v = ir.VectorType(_I64, lanes)
    # Vector of addresses: base + offset * itemsize (llvmlite's gep takes no vector index).
    base_vec = _splat(builder, builder.ptrtoint(base_ptr, _I64), i64v)
    nbytes = ir.Constant(i64v, [vt.dtype.bitwidth // 8] * lanes)
    ptrs = builder.inttoptr(builder.add(base_vec, builder.mul(builder.sext(offsets_i32, i64v), nbytes)),
                            ir.VectorType(base_ptr.type, lanes))
    fn = _intrinsic_fn(builder, f"llvm.masked.gather.{_vsuffix(vt)}.v{lanes}p0", llvt,
                       [ptrs.type, _I32, mask.type, llvt])
    return builder.call(fn, [ptrs, ir.Constant(_I32, vt.dtype.bitwidth // 8), mask, ir.Constant(llvt, None)])


@intrinsic
def vload(typingctx, arr, index):
    """``arr[index : index + lanes]`` as a vector (unaligned load)."""
    if not _is_float_array(arr) or not isinstance(index, types.Integer):
        return None
    vt = _vector_type(arr.dtype)

    def codegen(context, builder, sig, args):
        _mark_vector_width(builder)
        vptr = _vector_pointer(context, builder, sig.args[0], args[0], args[1], vt)
        return builder.load(vptr, align=arr.dtype.bitwidth // 8)

    return vt(arr, index), codegen


@intrinsic
def vload_even(typingctx, arr, index):
    """``arr[index : index + 2 * lanes : 2]`` as a vector: two unaligned loads and one constant
    shuffle of their even lanes (AVX2: ``vshufps`` and ``vpermpd``), where a stride-2 im2col window
    took two ``vpermps`` by an index vector, a blend and a mask. Reads ``2 * lanes`` elements."""
    if not _is_float_array(arr) or not isinstance(index, types.Integer):
        return None
    vt = _vector_type(arr.dtype)

    def codegen(context, builder, sig, args):
        _mark_vector_width(builder)
        lanes = vt.lanes
        align = arr.dtype.bitwidth // 8
        llvt = context.get_value_type(vt)
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        lo = builder.load(builder.bitcast(ptr, llvt.as_pointer()), align=align)
        hi = builder.load(builder.bitcast(cgutils.gep(builder, ptr, lanes), llvt.as_pointer()), align=align)
        return builder.shuffle_vector(lo, hi, ir.Constant(ir.VectorType(_I32, lanes), [2 * i for i in range(lanes)]))

    return vt(arr, index), codegen


@intrinsic
def vstore(typingctx, arr, index, vec):
    """``arr[index : index + lanes] = vec`` (unaligned store)."""
    if not _is_float_array(arr) or not isinstance(vec, SimdVector) or vec.dtype != arr.dtype:
        return None

    def codegen(context, builder, sig, args):
        _mark_vector_width(builder)
        vptr = _vector_pointer(context, builder, sig.args[0], args[0], args[1], vec)
        builder.store(args[2], vptr, align=arr.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.none(arr, index, vec), codegen


@intrinsic
def vload_masked(typingctx, arr, index, count):
    """Lanes ``l < count`` from ``arr[index + l]``, the others 0; nothing past ``count`` is read."""
    if not _is_float_array(arr) or not isinstance(index, types.Integer) or not isinstance(count, types.Integer):
        return None
    vt = _vector_type(arr.dtype)

    def codegen(context, builder, sig, args):
        _mark_vector_width(builder)
        llvt = context.get_value_type(vt)
        vptr = _vector_pointer(context, builder, sig.args[0], args[0], args[1], vt)
        mask = _lane_mask(builder, args[2], vt.lanes)
        fn = _intrinsic_fn(builder, f"llvm.masked.load.{_vsuffix(vt)}.p0", llvt,
                           [vptr.type, _I32, mask.type, llvt])
        return builder.call(fn, [vptr, ir.Constant(_I32, arr.dtype.bitwidth // 8), mask, ir.Constant(llvt, None)])

    return vt(arr, index, count), codegen


def _store_lanes(builder, vec, ptr, count, lanes, itemsize):
    """``ptr[l] = vec[l]`` for lanes ``l < count``: nothing for ``count <= 0``, the whole vector from
    ``lanes``, else by the binary digits of ``count``, the largest first: a digit ``w`` set is one
    store of ``w`` lanes (a half, a quarter, ..., one lane), after which the lanes still to store are
    shifted down by a shuffle. At most ``log2(lanes)`` stores, where a store per lane behind a
    compare each took ~0.4 us of a 5 us product to 10 columns (128 x 84 x 10, Zen 3)."""
    zero = ir.Constant(_I64, 0)
    count = builder.sext(count, _I64) if count.type.width < 64 else count
    some = builder.icmp_signed(">", count, zero)
    every = builder.icmp_signed(">=", count, ir.Constant(_I64, lanes))
    with builder.if_then(some), builder.if_else(every) as (whole, part):
        with whole:
            builder.store(vec, builder.bitcast(ptr, vec.type.as_pointer()), align=itemsize)
        with part:
            _store_digits(builder, vec, ptr, count, lanes, itemsize)


def _store_digits(builder, vec, ptr, count, lanes, itemsize):
    """:func:`_store_lanes` for ``0 < count < lanes``."""
    zero = ir.Constant(_I64, 0)
    element = vec.type.element
    part, offset, width = vec, zero, lanes // 2
    while width >= 1:
        if width == 1:
            low = builder.extract_element(part, ir.Constant(_I32, 0))
        else:
            low = builder.shuffle_vector(part, part, ir.Constant(ir.VectorType(_I32, width), list(range(width))))
        digit = builder.icmp_unsigned("!=", builder.and_(count, ir.Constant(_I64, width)), zero)
        with builder.if_then(digit):
            target = cgutils.gep(builder, ptr, offset)
            if width > 1:
                target = builder.bitcast(target, ir.VectorType(element, width).as_pointer())
            builder.store(low, target, align=itemsize)
        if width > 1:
            high = builder.shuffle_vector(part, part, ir.Constant(ir.VectorType(_I32, width),
                                                                  list(range(width, 2 * width))))
            part = builder.select(digit, high, low)
            offset = builder.add(offset, builder.select(digit, ir.Constant(_I64, width), zero))
        width //= 2


@intrinsic
def vstore_masked(typingctx, arr, index, vec, count):
    """``arr[index + l] = vec[l]`` for lanes ``l < count`` only."""
    if (not _is_float_array(arr) or not isinstance(vec, SimdVector) or vec.dtype != arr.dtype
            or not isinstance(count, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        _mark_vector_width(builder)
        if not MASKED_STORE_FAST:
            _store_lanes(builder, args[2], _element_pointer(context, builder, sig.args[0], args[0], args[1]),
                         args[3], vec.lanes, arr.dtype.bitwidth // 8)
            return context.get_dummy_value()
        vptr = _vector_pointer(context, builder, sig.args[0], args[0], args[1], vec)
        mask = _lane_mask(builder, args[3], vec.lanes)
        fn = _intrinsic_fn(builder, f"llvm.masked.store.{_vsuffix(vec)}.p0", ir.VoidType(),
                           [args[2].type, vptr.type, _I32, mask.type])
        builder.call(fn, [args[2], vptr, ir.Constant(_I32, arr.dtype.bitwidth // 8), mask])
        return context.get_dummy_value()

    return types.none(arr, index, vec, count), codegen


@intrinsic
def vbroadcast_load(typingctx, arr, index):
    """A vector with every lane equal to ``arr[index]``."""
    if not _is_float_array(arr) or not isinstance(index, types.Integer):
        return None
    vt = _vector_type(arr.dtype)

    def codegen(context, builder, sig, args):
        _mark_vector_width(builder)
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        return _splat(builder, builder.load(ptr), context.get_value_type(vt))

    return vt(arr, index), codegen


@intrinsic
def load(typingctx, arr, index):
    """``arr[index]`` for a 1-D array, without negative-index wraparound (hot loops)."""
    if not (_is_buffer(arr) and getattr(arr, "ndim", 1) == 1 and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return builder.load(_element_pointer(context, builder, sig.args[0], args[0], args[1]))

    return arr.dtype(arr, index), codegen


@intrinsic
def store(typingctx, arr, index, value):
    """``arr[index] = value`` for a 1-D array, without negative-index wraparound."""
    if not (_is_buffer(arr) and getattr(arr, "ndim", 1) == 1 and isinstance(index, types.Integer)
            and isinstance(value, (types.Float, types.Integer))):
        return None

    def codegen(context, builder, sig, args):
        val = context.cast(builder, args[2], sig.args[2], sig.args[0].dtype)
        builder.store(val, _element_pointer(context, builder, sig.args[0], args[0], args[1]))
        return context.get_dummy_value()

    return types.none(arr, index, value), codegen


@intrinsic
def vgather(typingctx, arr, base, offsets, start):
    """Lane ``l`` is ``arr[base + offsets[start + l]]``, or 0 where that offset is negative.

    ``offsets`` is an int32 array. One hardware gather: used to pack
    transposed operands and im2col columns, whose ``lanes`` values sit in
    ``lanes`` different rows.
    """
    if not (_is_float_array(arr) and _is_int32_array(offsets)
            and isinstance(base, types.Integer) and isinstance(start, types.Integer)):
        return None
    vt = _vector_type(arr.dtype)

    def codegen(context, builder, sig, args):
        _mark_vector_width(builder)
        i32v = ir.VectorType(_I32, vt.lanes)
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        optr = _element_pointer(context, builder, sig.args[2], args[2], args[3])
        idx = builder.load(builder.bitcast(optr, i32v.as_pointer()), align=4)
        mask = builder.icmp_signed(">=", idx, ir.Constant(i32v, None))
        return _masked_gather(context, builder, vt, ptr, idx, mask)

    return vt(arr, base, offsets, start), codegen


@intrinsic
def vpermute2(typingctx, arr, base, indices, start):
    """Lane ``l`` is ``arr[base + indices[start + l]]`` (indices in ``[0, 2 * lanes)``), or 0
    where the index is negative.

    Two unaligned loads of the window ``arr[base : base + 2 * lanes]`` and one
    zero-masked ``vpermt2ps``/``vpermt2pd`` (AVX2: two ``vpermps`` and a
    blend): an im2col gather whose lanes all fall in a short window costs a
    few register instructions instead of a hardware gather (on Zen 3 a
    ``vgatherdps ymm`` takes about as long as eight FMAs). The caller keeps
    the window in bounds. Without either (``HAS_PERMUTE2`` false) it is a
    gather.
    """
    if not (_is_float_array(arr) and _is_int32_array(indices)
            and isinstance(base, types.Integer) and isinstance(start, types.Integer)):
        return None
    vt = _vector_type(arr.dtype)

    def codegen(context, builder, sig, args):
        _mark_vector_width(builder)
        lanes = vt.lanes
        llvt = context.get_value_type(vt)
        i32v = ir.VectorType(_I32, lanes)
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        optr = _element_pointer(context, builder, sig.args[2], args[2], args[3])
        idx = builder.load(builder.bitcast(optr, i32v.as_pointer()), align=4)
        mask = builder.icmp_signed(">=", idx, ir.Constant(i32v, None))
        if not HAS_PERMUTE2:
            return _masked_gather(context, builder, vt, ptr, idx, mask)
        align = arr.dtype.bitwidth // 8
        lo = builder.load(builder.bitcast(ptr, llvt.as_pointer()), align=align)
        hi = builder.load(builder.bitcast(cgutils.gep(builder, ptr, lanes), llvt.as_pointer()), align=align)
        if ISA.name == "avx2":
            permuted = _avx2_permute2(builder, arr.dtype.bitwidth, lanes, lo, hi, idx)
        else:
            sel = builder.and_(idx, ir.Constant(i32v, [2 * lanes - 1] * lanes))
            if arr.dtype.bitwidth == 64:
                sel = builder.sext(sel, ir.VectorType(_I64, lanes))
                name = "llvm.x86.avx512.vpermi2var.pd.512"
            else:
                name = "llvm.x86.avx512.vpermi2var.ps.512"
            permuted = builder.call(_intrinsic_fn(builder, name, llvt, [llvt, sel.type, llvt]), [lo, sel, hi])
        return builder.select(mask, permuted, ir.Constant(llvt, None))

    return vt(arr, base, indices, start), codegen


def _avx2_permute2(builder, bitwidth, lanes, lo, hi, idx):
    """AVX2's two-source permute: lane ``l`` is ``concat(lo, hi)[idx[l] % (2 * lanes)]``.

    ``vpermps`` (``llvm.x86.avx2.permps``) permutes eight 32-bit lanes of one
    register by a vector of indices; doubles are moved as pairs of 32-bit
    halves.
    """
    f32x8 = ir.VectorType(ir.FloatType(), 8)
    i32x8 = ir.VectorType(_I32, 8)
    fn = _intrinsic_fn(builder, "llvm.x86.avx2.permps", f32x8, [f32x8, i32x8])
    high = builder.icmp_signed("!=", builder.and_(idx, ir.Constant(idx.type, [lanes] * lanes)),
                               ir.Constant(idx.type, None))
    sel = builder.and_(idx, ir.Constant(idx.type, [lanes - 1] * lanes))
    if bitwidth == 64:
        # Index i of a double -> 32-bit lanes 2i, 2i + 1.
        pairs = builder.shuffle_vector(sel, ir.Constant(idx.type, ir.Undefined),
                                       ir.Constant(i32x8, [0, 0, 1, 1, 2, 2, 3, 3]))
        sel = builder.add(builder.shl(pairs, ir.Constant(i32x8, [1] * 8)), ir.Constant(i32x8, [0, 1] * 4))
        plo = builder.bitcast(builder.call(fn, [builder.bitcast(lo, f32x8), sel]), lo.type)
        phi = builder.bitcast(builder.call(fn, [builder.bitcast(hi, f32x8), sel]), lo.type)
    else:
        plo = builder.call(fn, [lo, sel])
        phi = builder.call(fn, [hi, sel])
    return builder.select(high, phi, plo)


@intrinsic
def prefetch_write(typingctx, arr, index):
    """Hint the cache hierarchy to fetch the line holding ``arr[index]`` into L1, for writing.

    Write intent (``prefetchw``) because every caller is about to store to
    the line: a read prefetch would fetch it shared and the store would then
    have to ask for ownership again.
    """
    if not (_is_buffer(arr) and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        i8p = ir.IntType(8).as_pointer()
        fn = _intrinsic_fn(builder, "llvm.prefetch.p0", ir.VoidType(), [i8p, _I32, _I32, _I32])
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(_I32, 1), ir.Constant(_I32, 3),
                          ir.Constant(_I32, 1)])
        return context.get_dummy_value()

    return types.none(arr, index), codegen


@intrinsic
def vzero(typingctx, arr):
    """A zero vector of ``arr``'s element type."""
    if not _is_float_array(arr):
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
        if not HAS_FMA:  # llvm.fma would become a libm call per lane
            return builder.fadd(builder.fmul(args[0], args[1]), args[2])
        return builder.call(_intrinsic_fn(builder, f"llvm.fma.{_vsuffix(sig.args[0])}", vt, [vt, vt, vt]), args)

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


def _reduce_halves(builder, v, lanes, combine):
    """``v``'s lanes folded to one scalar: its two halves combined (``combine(lo, hi)``) until one lane is left."""
    count = lanes
    while count > 1:
        half = count // 2
        lo = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, half), list(range(half))))
        hi = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, half), list(range(half, count))))
        v = combine(lo, hi)
        count = half
    return builder.extract_element(v, ir.Constant(_I32, 0))


@intrinsic
def vsum(typingctx, vec):
    """The sum of ``vec``'s lanes, as a scalar: halves added pairwise (a tree of shuffles and adds)."""
    if not isinstance(vec, SimdVector):
        return None

    def codegen(context, builder, sig, args):
        _mark_vector_width(builder)
        return _reduce_halves(builder, args[0], vec.lanes, builder.fadd)

    return vec.dtype(vec), codegen


def _select_greater(builder, a, b):
    """``b`` where ``b > a``, else ``a`` (ordered: a NaN in ``b`` keeps ``a``)."""
    return builder.select(builder.fcmp_ordered(">", b, a), b, a)


@intrinsic
def vmax(typingctx, a, b):
    """``b if b > a else a`` lane by lane: one max instruction; a NaN lane of ``b`` is skipped."""
    if not (isinstance(a, SimdVector) and a == b):
        return None

    def codegen(context, builder, sig, args):
        _mark_vector_width(builder)
        return _select_greater(builder, args[0], args[1])

    return a(a, b), codegen


@intrinsic
def vmax_lanes(typingctx, vec):
    """The largest of ``vec``'s lanes, as a scalar: halves compared pairwise (as :func:`vsum` adds them)."""
    if not isinstance(vec, SimdVector):
        return None

    def codegen(context, builder, sig, args):
        _mark_vector_width(builder)
        return _reduce_halves(builder, args[0], vec.lanes, lambda lo, hi: _select_greater(builder, lo, hi))

    return vec.dtype(vec), codegen


def _transpose_masks(lanes: int, s: int) -> tuple[list[int], list[int]]:
    """``shufflevector`` masks of one stage of :func:`vtranspose_copy`: rows ``i`` and ``i + s`` (with
    ``i & s == 0``) swap the off-diagonal ``s x s`` blocks of every ``2s x 2s`` block they share."""
    lo = [x if x % (2 * s) < s else lanes + x - s for x in range(lanes)]
    hi = [x + s if x % (2 * s) < s else lanes + x for x in range(lanes)]
    return lo, hi


@intrinsic
def vtranspose_copy(typingctx, src, src_off, src_ld, dst, dst_off, dst_ld):
    """``dst[dst_off + p * dst_ld + r] = src[src_off + r * src_ld + p]`` for ``r, p < lanes``: a square
    block transposed in registers (``lanes`` vector loads, ``lanes * log2(lanes)`` two-source shuffles,
    ``lanes`` vector stores: 8 x 8 float32 on AVX2 is ``vunpck``/``vshufps``/``vperm2f128``).

    Each stage ``s = lanes/2, ..., 1`` swaps bit ``log2(s)`` of the row index with the column's;
    after every stage the block is its transpose. Used to pack a transposed B (``_gemm_pack``),
    where scalar moves cost a load and a store per element.
    """
    if not (_is_float_array(src) and _is_float_array(dst) and src.dtype == dst.dtype
            and all(isinstance(i, types.Integer) for i in (src_off, src_ld, dst_off, dst_ld))):
        return None
    vt = _vector_type(src.dtype)

    def codegen(context, builder, sig, args):
        _mark_vector_width(builder)
        s_arr, d_arr = args[0], args[3]
        s_ty, d_ty = sig.args[0], sig.args[3]
        s_off, s_ld, d_off, d_ld = (context.cast(builder, args[i], sig.args[i], types.intp) for i in (1, 2, 4, 5))
        lanes = vt.lanes
        align = vt.dtype.bitwidth // 8
        rows = []
        for r in range(lanes):
            index = builder.add(s_off, builder.mul(s_ld, ir.Constant(s_ld.type, r)))
            rows.append(builder.load(_vector_pointer(context, builder, s_ty, s_arr, index, vt), align=align))
        s = lanes // 2
        while s >= 1:
            lo, hi = _transpose_masks(lanes, s)
            mask_lo = ir.Constant(ir.VectorType(_I32, lanes), lo)
            mask_hi = ir.Constant(ir.VectorType(_I32, lanes), hi)
            new = list(rows)
            for i in range(lanes):
                if not i & s:
                    new[i] = builder.shuffle_vector(rows[i], rows[i + s], mask_lo)
                    new[i + s] = builder.shuffle_vector(rows[i], rows[i + s], mask_hi)
            rows = new
            s //= 2
        for p in range(lanes):
            index = builder.add(d_off, builder.mul(d_ld, ir.Constant(d_ld.type, p)))
            builder.store(rows[p], _vector_pointer(context, builder, d_ty, d_arr, index, vt), align=align)
        return context.get_dummy_value()

    return types.none(src, src_off, src_ld, dst, dst_off, dst_ld), codegen
