// The device path of GradientSynchronizer in builds without NCCL: it refuses to start.
#include "halo/util/error.hpp"
#include "nccl/grad_sync_device.hpp"

namespace halo::dist::detail {

struct DeviceGradSync::Impl {};

DeviceGradSync::DeviceGradSync(std::shared_ptr<NcclCommunicator>, int, std::vector<DeviceBucket>) {
  throw DistError(
      "GradientSynchronizer: the parameters are on a GPU but this build has no NCCL (reconfigure with "
      "-DHALO_ENABLE_CUDA=ON and NCCL 2 installed, NCCL_ROOT pointing at it)");
}
DeviceGradSync::~DeviceGradSync() = default;
void DeviceGradSync::launch(int, double) {}
void DeviceGradSync::finish(int, const std::function<void(int)>&) {}
void DeviceGradSync::watch_current_stream(const std::string&) {}

}  // namespace halo::dist::detail
