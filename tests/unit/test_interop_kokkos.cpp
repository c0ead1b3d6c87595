// Kokkos::View <-> Tensor without copies (Serial/host backend; CUDA views are covered by the
// same code path with a device check). Kokkos is initialised once, on first use, and
// finalised at exit after every view of the tests is gone.
#include <catch2/catch.hpp>

#include "halo/data/loader.hpp"
#include "halo/interop/kokkos.hpp"

using namespace halo;

namespace {

void ensure_kokkos() {
  struct Session {
    Session() { Kokkos::initialize(); }
    ~Session() { Kokkos::finalize(); }
  };
  static Session session;
}

}  // namespace

TEST_CASE("from_view shares a row-major host view's memory, shape and strides") {
  ensure_kokkos();
  Kokkos::View<float***, Kokkos::LayoutRight, Kokkos::HostSpace> v("field", 2, 3, 4);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) v(i, j, k) = float(100 * i + 10 * j + k);

  Tensor t = interop::from_view(v);
  CHECK(t.shape() == Shape{2, 3, 4});
  CHECK(t.strides() == Strides{12, 4, 1});
  CHECK(t.dtype() == DType::f32);
  CHECK(t.device() == Device::cpu());
  CHECK(t.raw_data() == static_cast<void*>(v.data()));
  CHECK(t.to_vector<float>()[1 * 12 + 2 * 4 + 3] == 123.0f);

  // Same memory both ways: a write through either is seen by the other.
  t.data<float>()[5] = -7.0f;
  CHECK(v(0, 1, 1) == -7.0f);
  v(1, 2, 3) = 42.0f;
  CHECK(t.to_vector<float>().back() == 42.0f);
}

TEST_CASE("from_view keeps LayoutLeft strides and other element types") {
  ensure_kokkos();
  Kokkos::View<double**, Kokkos::LayoutLeft, Kokkos::HostSpace> v("left", 3, 5);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 5; ++j) v(i, j) = i * 10 + j;
  Tensor t = interop::from_view(v);
  CHECK(t.dtype() == DType::f64);
  CHECK(t.strides() == Strides{1, 3});
  CHECK_FALSE(t.is_contiguous());
  // to_vector walks the logical (row-major) order through the strides.
  std::vector<double> expect;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 5; ++j) expect.push_back(i * 10 + j);
  CHECK(t.to_vector<double>() == expect);

  Kokkos::View<int32_t*, Kokkos::HostSpace> ints("ints", 4);
  CHECK(interop::from_view(ints).dtype() == DType::i32);
}

TEST_CASE("from_view wraps strided subviews in place") {
  ensure_kokkos();
  Kokkos::View<float**, Kokkos::LayoutRight, Kokkos::HostSpace> v("grid", 4, 6);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 6; ++j) v(i, j) = float(i * 6 + j);
  auto column = Kokkos::subview(v, Kokkos::ALL, 2);  // LayoutStride, stride 6
  Tensor t = interop::from_view(column);
  CHECK(t.shape() == Shape{4});
  CHECK(t.strides() == Strides{6});
  CHECK(t.to_vector<float>() == std::vector<float>{2, 8, 14, 20});
}

TEST_CASE("the tensor keeps the view's allocation alive") {
  ensure_kokkos();
  Tensor t;
  {
    Kokkos::View<float*, Kokkos::HostSpace> v("short-lived", 1000);
    Kokkos::deep_copy(v, 3.0f);
    t = interop::from_view(v);
    CHECK(v.use_count() == 2);  // the view here and the copy the tensor holds
  }
  // The only view is gone; its memory must still be valid and hold the values.
  auto values = t.to_vector<float>();
  CHECK(values.size() == 1000);
  CHECK(values.front() == 3.0f);
  CHECK(values.back() == 3.0f);
}

TEST_CASE("releasing the last tensor releases the view's reference") {
  ensure_kokkos();
  Kokkos::View<float*, Kokkos::HostSpace> v("counted", 8);
  {
    Tensor t = interop::from_view(v);
    Tensor alias = t.reshape({2, 4});
    CHECK(v.use_count() == 2);
  }
  CHECK(v.use_count() == 1);
}

TEST_CASE("to_view gives an unmanaged view over the tensor's memory") {
  ensure_kokkos();
  Tensor t = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5}, {2, 3});
  auto v = interop::to_view<float**>(t);
  CHECK(v.extent(0) == 2);
  CHECK(v.extent(1) == 3);
  CHECK(v.data() == t.data<float>());
  CHECK(v(1, 2) == 5.0f);
  v(0, 1) = 9.0f;
  CHECK(t.to_vector<float>()[1] == 9.0f);

  // Round trip: a tensor over that view is the same memory again.
  Tensor back = interop::from_view(v);
  CHECK(back.raw_data() == t.raw_data());
  CHECK(back.shape() == t.shape());
}

TEST_CASE("to_view honours layouts and reads non-contiguous tensors through LayoutStride") {
  ensure_kokkos();
  Tensor t = Tensor::zeros({2, 3, 4, 5}).to_memory_format(MemoryFormat::channels_last);
  REQUIRE_FALSE(t.is_contiguous());
  CHECK_THROWS_AS((interop::to_view<float****>(t)), ShapeError);
  auto sv = interop::to_view<float****, Kokkos::LayoutStride>(t);
  CHECK(sv.stride(1) == 1);  // channels are innermost in memory
  sv(1, 2, 3, 4) = 8.0f;
  CHECK(t.contiguous().to_vector<float>().back() == 8.0f);

  // A column-major tensor is a LayoutLeft view, not a LayoutRight one.
  Kokkos::View<float**, Kokkos::LayoutLeft, Kokkos::HostSpace> left("left", 3, 2);
  Tensor lt = interop::from_view(left);
  CHECK_NOTHROW(interop::to_view<float**, Kokkos::LayoutLeft>(lt));
  CHECK_THROWS_AS((interop::to_view<float**, Kokkos::LayoutRight>(lt)), ShapeError);
}

TEST_CASE("to_view rejects the wrong element type or rank with a message that says what to do") {
  ensure_kokkos();
  Tensor t = Tensor::zeros({2, 3});
  CHECK_THROWS_WITH(interop::to_view<double**>(t), Catch::Contains("f32") && Catch::Contains("f64") &&
                                                       Catch::Contains("to(DType)"));
  CHECK_THROWS_WITH(interop::to_view<float*>(t), Catch::Contains("rank 2") && Catch::Contains("rank 1"));
  CHECK_THROWS_AS(interop::to_view<float**>(Tensor()), ShapeError);
}

TEST_CASE("make_dataset serves views to the loader and sees the simulation's later writes") {
  ensure_kokkos();
  Kokkos::View<float*****, Kokkos::LayoutRight, Kokkos::HostSpace> x("fields", 4, 2, 2, 2, 2);
  Kokkos::View<int****, Kokkos::LayoutRight, Kokkos::HostSpace> y("classes", 4, 2, 2, 2);
  for (int i = 0; i < 4; ++i)
    for (int c = 0; c < 2; ++c)
      for (int v = 0; v < 8; ++v) {
        x(i, c, v / 4, (v / 2) % 2, v % 2) = float(100 * i + 10 * c + v);
        if (c == 0) y(i, v / 4, (v / 2) % 2, v % 2) = i;
      }
  auto ds = interop::make_dataset(x, y);
  CHECK(ds->size() == 4);
  CHECK(ds->sample_shape() == Shape{2, 2, 2, 2});
  CHECK(ds->label_dtype() == DType::i32);
  CHECK(ds->describe(3) == "array 'fields', sample 3");

  data::LoaderOptions o;
  o.batch_size = 2;
  o.shard.shuffle = false;
  data::DataLoader loader(ds, o);
  x(3, 1, 1, 1, 1) = -5.0f;  // written after the data set was made: shared, not copied
  loader.start_epoch(0);
  int64_t rows = 0;
  while (const data::Batch* b = loader.next()) {
    Tensor bx = b->x.contiguous();
    for (int64_t k = 0; k < b->size; ++k) {
      const int i = b->y.data<int32_t>()[k * 8];
      CHECK(bx.data<float>()[k * 16] == float(100 * i));
      CHECK(bx.data<float>()[k * 16 + 15] == (i == 3 ? -5.0f : float(100 * i + 17)));
      ++rows;
    }
  }
  CHECK(rows == 4);
}
