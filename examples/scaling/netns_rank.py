#!/usr/bin/python3
import ctypes, os, socket, sys, threading, re
CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL("libc.so.6", use_errno=True)
def setns(path):
    fd = os.open(path, os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns " + path)
    os.close(fd)
rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
per_host = int(os.environ.get("HALO_NETNS_RANKS_PER_HOST", "1"))
host = rank // per_host
local = rank % per_host
ns = f"/var/run/netns/halo-h{host}"
uri_vars = [k for k in os.environ if k.startswith("PMIX_SERVER_URI")]
m = re.search(r"tcp4://127\.0\.0\.1:(\d+)", os.environ[uri_vars[0]])
port = int(m.group(1))
alias = f"127.0.0.{2 + local}"
root_fd = os.open("/proc/self/ns/net", os.O_RDONLY)
setns(ns)
lst = socket.socket(); lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind((alias, port)); lst.listen(16)
if libc.setns(root_fd, CLONE_NEWNET) != 0: raise OSError("back to root")
pid = os.fork()
if pid:  # parent: the rank, inside the namespace
    lst.close(); setns(ns)
    for k in uri_vars:
        os.environ[k] = os.environ[k].replace("127.0.0.1:", alias + ":")
    os.execvp(sys.argv[1], sys.argv[1:])
# child: forwards PMIx connections from the namespace to the launcher's loopback
def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            b.sendall(d)
    except OSError: pass
    finally:
        try: b.shutdown(socket.SHUT_WR)
        except OSError: pass
def watch():
    os.waitpid  # parent is not our child; poll for its death
    import time
    while os.getppid() != 1 and os.path.exists(f"/proc/{os.getppid()}"): time.sleep(0.5)
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
while True:
    c, _ = lst.accept()
    u = socket.create_connection(("127.0.0.1", port))
    threading.Thread(target=pump, args=(c, u), daemon=True).start()
    threading.Thread(target=pump, args=(u, c), daemon=True).start()
