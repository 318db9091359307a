//! Data parallelism on libtorch's own distributed engine, c10d (what
//! `torch.distributed` runs on): a TCPStore rendezvous from the standard
//! launcher variables, a Gloo process group, and the collectives training
//! needs (all-reduce, broadcast, barrier), through a small C++ shim
//! (`c10d_shim.cpp`).
//!
//! A process joins a group when `WORLD_SIZE` (or SLURM's `SLURM_NTASKS`) is
//! more than 1; training then shards each global batch over the ranks and
//! sums the gradients, so that a script runs unchanged on one process or
//! many. Nothing here knows of scripts or notebooks.

use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

/// How long a collective or the rendezvous waits for the other ranks
/// before failing, unless `TUNEBOOK_DIST_TIMEOUT` (seconds) says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Gradients are all-reduced in buckets of about this many bytes (DDP's
/// default), so that several collectives are in flight at once.
pub const BUCKET_BYTES: usize = 25 << 20;

/// The first gradient bucket is small, so that communication starts early
/// in the backward pass (DDP's default too).
pub const FIRST_BUCKET_BYTES: usize = 1 << 20;

#[allow(non_camel_case_types)]
#[repr(C)]
struct tb_group {
    _opaque: [u8; 0],
}

extern "C" {
    fn tb_group_new_gloo(
        master_addr: *const c_char,
        port: c_int,
        rank: c_int,
        size: c_int,
        timeout_ms: i64,
        bind_host: *const c_char,
        serve_store: c_int,
        key_prefix: *const c_char,
        listen_fd: c_int,
        err: *mut *mut c_char,
    ) -> *mut tb_group;
    fn tb_group_free(group: *mut tb_group);
    fn tb_string_free(text: *mut c_char);
    fn tb_all_reduce(group: *mut tb_group, tensors: *const *mut torch_sys::C_tensor, count: usize, op: c_int, err: *mut *mut c_char) -> c_int;
    fn tb_broadcast(group: *mut tb_group, tensors: *const *mut torch_sys::C_tensor, count: usize, root: c_int, err: *mut *mut c_char) -> c_int;
    fn tb_barrier(group: *mut tb_group, err: *mut *mut c_char) -> c_int;
    fn tb_overlap_new(group: *mut tb_group, params: *const *mut torch_sys::C_tensor, count: usize, first_bytes: i64, bucket_bytes: i64, err: *mut *mut c_char) -> *mut tb_overlap;
    fn tb_overlap_free(overlap: *mut tb_overlap);
    fn tb_overlap_begin_step(overlap: *mut tb_overlap);
    fn tb_overlap_last_backward(overlap: *mut tb_overlap);
    fn tb_overlap_finish(overlap: *mut tb_overlap, buckets: *const *mut torch_sys::C_tensor, bucket_count: usize, reported: *mut u8, err: *mut *mut c_char) -> c_int;
    fn tb_overlap_bucket_count(overlap: *mut tb_overlap) -> usize;
    fn tb_overlap_place(overlap: *mut tb_overlap, i: usize, bucket: *mut c_int, offset: *mut i64);
}

#[allow(non_camel_case_types)]
#[repr(C)]
struct tb_overlap {
    _opaque: [u8; 0],
}

/// Takes the shim's error string, if it set one.
fn take_error(err: *mut c_char) -> String {
    if err.is_null() {
        return "c10d failed without a message".to_string();
    }
    // SAFETY: the shim hands over a malloc'd, NUL-terminated string.
    let text = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
    unsafe { tb_string_free(err) };
    text
}

/// Where this process sits in a distributed run, from the launcher's
/// environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchEnv {
    /// This process's rank, 0-based.
    pub rank: usize,
    /// How many processes train together.
    pub world_size: usize,
    /// The rank among the processes on this machine (picks the GPU).
    pub local_rank: usize,
    /// The address of rank 0, which serves the rendezvous store.
    pub master_addr: String,
    /// The rendezvous store's port.
    pub master_port: u16,
    /// How long to wait for the other ranks.
    pub timeout: Duration,
    /// The key prefix of this attempt when the launcher serves the store
    /// (torchrun's agent store, `TORCHELASTIC_USE_AGENT_STORE=True`); rank 0
    /// serves it otherwise.
    pub agent_store_prefix: Option<String>,
    /// For rank 0: a socket already listening on the store's port that the
    /// launcher opened and passed down (`TUNEBOOK_STORE_FD`), so that the
    /// port is never released between being picked and being served.
    pub store_listen_fd: Option<i32>,
}

/// The environment variable through which a launcher hands rank 0 the
/// listening socket of its store.
pub const STORE_FD_VAR: &str = "TUNEBOOK_STORE_FD";

impl LaunchEnv {
    /// The launch from the process environment: `None` for a single
    /// process (no `WORLD_SIZE`, or 1), an error naming the variable when
    /// the environment is half set or malformed.
    pub fn from_env() -> Result<Option<LaunchEnv>> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`from_env`](Self::from_env), reading variables through `var`.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Option<LaunchEnv>> {
        // torchrun's names first; SLURM's srun sets its own.
        let pick = |names: &[&'static str]| -> Option<(&'static str, String)> { names.iter().find_map(|n| var(n).map(|v| (*n, v))) };
        let Some((size_name, size)) = pick(&["WORLD_SIZE", "SLURM_NTASKS"]) else { return Ok(None) };
        let number = |name: &str, value: &str| -> Result<usize> {
            value.trim().parse::<usize>().with_context(|| format!("{name}={value:?} is not a whole number"))
        };
        let world_size = number(size_name, &size)?;
        if world_size <= 1 {
            return Ok(None);
        }
        let (rank_name, rank) = pick(&["RANK", "SLURM_PROCID"])
            .with_context(|| format!("{size_name}={world_size} but RANK is not set: a launcher sets both (torchrun, or tunebook run --nproc N)"))?;
        let rank = number(rank_name, &rank)?;
        if rank >= world_size {
            bail!("{rank_name}={rank} but {size_name}={world_size}: ranks run from 0 to {}", world_size - 1);
        }
        let local_rank = match pick(&["LOCAL_RANK", "SLURM_LOCALID"]) {
            Some((n, v)) => number(n, &v)?,
            None => 0,
        };
        let master_addr = var("MASTER_ADDR").with_context(|| {
            format!("{size_name}={world_size} but MASTER_ADDR is not set: export MASTER_ADDR=<rank 0's host> and MASTER_PORT=<a free port> on every rank")
        })?;
        let port = var("MASTER_PORT").context("MASTER_ADDR is set but MASTER_PORT is not: export MASTER_PORT=<a free port on rank 0's host> on every rank")?;
        let master_port = port.trim().parse::<u16>().ok().filter(|p| *p > 0).with_context(|| format!("MASTER_PORT={port:?} is not a port number (1-65535)"))?;
        let timeout = match var("TUNEBOOK_DIST_TIMEOUT") {
            Some(v) => Duration::from_secs_f64(
                v.trim().parse::<f64>().ok().filter(|s| *s > 0.0 && s.is_finite()).with_context(|| format!("TUNEBOOK_DIST_TIMEOUT={v:?} is not a positive number of seconds"))?,
            ),
            None => DEFAULT_TIMEOUT,
        };
        // torchrun serves the store itself and tells its workers so; PyTorch's
        // workers then prefix their keys with the restart attempt.
        let agent_store_prefix = (var("TORCHELASTIC_USE_AGENT_STORE").as_deref() == Some("True"))
            .then(|| format!("/worker/attempt_{}", var("TORCHELASTIC_RESTART_COUNT").unwrap_or_else(|| "0".into())));
        let store_listen_fd = match var(STORE_FD_VAR) {
            Some(v) if rank == 0 && is_loopback(&master_addr) => Some(v.trim().parse::<i32>().ok().filter(|fd| *fd >= 0).with_context(|| format!("{STORE_FD_VAR}={v:?} is not a file descriptor"))?),
            _ => None,
        };
        Ok(Some(LaunchEnv { rank, world_size, local_rank, master_addr, master_port, timeout, agent_store_prefix, store_listen_fd }))
    }
}

/// How an all-reduce combines the ranks' values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    /// Elementwise sum.
    Sum,
    /// Elementwise maximum.
    Max,
}

/// A c10d process group (Gloo) that this process belongs to.
pub struct ProcessGroup {
    raw: *mut tb_group,
    rank: usize,
    world_size: usize,
    local_rank: usize,
    timeout: Duration,
}

// SAFETY: c10d backends are made to be called from any thread (torch's
// Python front end does so); the handle itself is only freed on drop.
unsafe impl Send for ProcessGroup {}
unsafe impl Sync for ProcessGroup {}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: raw came from tb_group_new_gloo and is freed once.
        unsafe { tb_group_free(self.raw) };
    }
}

/// Hands `listener` to the process `cmd` starts, as rank 0's store socket:
/// the child inherits it (its close-on-exec flag is cleared in the child
/// only) and finds its number in `TUNEBOOK_STORE_FD`.
pub fn hand_store_listener(cmd: &mut std::process::Command, listener: &std::net::TcpListener) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let fd = listener.as_raw_fd();
    cmd.env(STORE_FD_VAR, fd.to_string());
    // SAFETY: fcntl is async-signal-safe and changes only the child's table.
    unsafe {
        cmd.pre_exec(move || set_close_on_exec(fd, false));
    }
}

/// Sets or clears a descriptor's close-on-exec flag (only its flags change).
fn set_close_on_exec(fd: i32, on: bool) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor number reads and writes its flags only.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        let wanted = if on { flags | libc::FD_CLOEXEC } else { flags & !libc::FD_CLOEXEC };
        if flags < 0 || libc::fcntl(fd, libc::F_SETFD, wanted) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// True when `host` names this machine's loopback interface.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl ProcessGroup {
    /// Joins the group described by `launch`: rendezvous at the master's
    /// store, then a full mesh of Gloo connections. Blocks until every rank
    /// has joined or the timeout passes.
    pub fn join(launch: &LaunchEnv) -> Result<ProcessGroup> {
        let addr = CString::new(launch.master_addr.clone()).context("MASTER_ADDR contains a NUL byte")?;
        // A single-machine run binds Gloo to loopback too, so it works
        // without a resolvable host name; otherwise GLOO_SOCKET_IFNAME or
        // the host name's address picks the interface, as in PyTorch.
        let bind = (is_loopback(&launch.master_addr) && std::env::var_os("GLOO_SOCKET_IFNAME").is_none()).then(|| CString::new("127.0.0.1").expect("no NUL"));
        let prefix = CString::new(launch.agent_store_prefix.clone().unwrap_or_default()).context("TORCHELASTIC_RESTART_COUNT contains a NUL byte")?;
        // The handed-down socket is used once: the store takes it over (and
        // closes it), and processes this one starts must not inherit it.
        static STORE_FD_USED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let listen_fd = launch.store_listen_fd.filter(|_| !STORE_FD_USED.swap(true, std::sync::atomic::Ordering::SeqCst));
        if let Some(fd) = listen_fd {
            std::env::remove_var(STORE_FD_VAR);
            set_close_on_exec(fd, true).with_context(|| format!("{STORE_FD_VAR}={fd} is not an open file descriptor"))?;
        }
        let mut err = std::ptr::null_mut();
        // SAFETY: the strings outlive the call; err is set only on failure.
        let raw = unsafe {
            tb_group_new_gloo(
                addr.as_ptr(),
                launch.master_port as c_int,
                launch.rank as c_int,
                launch.world_size as c_int,
                launch.timeout.as_millis() as i64,
                bind.as_ref().map_or(std::ptr::null(), |b| b.as_ptr()),
                c_int::from(launch.agent_store_prefix.is_none()),
                prefix.as_ptr(),
                listen_fd.unwrap_or(-1),
                &mut err,
            )
        };
        if raw.is_null() {
            bail!(
                "rank {} of {} could not join the process group at {}:{} within {:.0} s: {}\n(every rank must be started with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE, and rank 0's port must be reachable)",
                launch.rank,
                launch.world_size,
                launch.master_addr,
                launch.master_port,
                launch.timeout.as_secs_f64(),
                take_error(err)
            );
        }
        Ok(ProcessGroup { raw, rank: launch.rank, world_size: launch.world_size, local_rank: launch.local_rank, timeout: launch.timeout })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The rank among this machine's processes (which GPU it uses).
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// How many processes are in the group.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// Turns a failed collective into a message that says what probably
    /// happened and what to do.
    fn lost(&self, what: &str, err: *mut c_char) -> anyhow::Error {
        anyhow::anyhow!(
            "rank {} lost the other ranks during {what}: {}\n(another rank stopped: it crashed, was killed, or failed with its own error, shown in its output; or it did not answer within {:.0} s. Resume from the last checkpoint, with any number of processes)",
            self.rank,
            take_error(err),
            self.timeout.as_secs_f64()
        )
    }

    /// Runs one shim collective over contiguous CPU tensors.
    fn collective(&self, what: &str, tensors: &mut [Tensor], call: impl FnOnce(*const *mut torch_sys::C_tensor, usize, *mut *mut c_char) -> c_int) -> Result<()> {
        let ptrs: Vec<*mut torch_sys::C_tensor> = tensors.iter_mut().map(|t| t.as_mut_ptr()).collect();
        let mut err = std::ptr::null_mut();
        if call(ptrs.as_ptr(), ptrs.len(), &mut err) != 0 {
            return Err(self.lost(what, err));
        }
        Ok(())
    }

    /// Combines `tensors` over all ranks; returns the results, in the same
    /// shapes, kinds and devices. The tensors travel as flat CPU buckets of
    /// one kind each ([`BUCKET_BYTES`]), reduced concurrently.
    pub fn all_reduce(&self, tensors: &[Tensor], op: ReduceOp) -> Result<Vec<Tensor>> {
        let op_code = match op {
            ReduceOp::Sum => 0,
            ReduceOp::Max => 1,
        };
        self.bucketed("all-reduce", tensors, |group, buckets| {
            group.collective("all-reduce", buckets, |p, n, e| unsafe { tb_all_reduce(group.raw, p, n, op_code, e) })
        })
    }

    /// Every rank's `tensors` take the values of `root`'s; returns them.
    pub fn broadcast(&self, tensors: &[Tensor], root: usize) -> Result<Vec<Tensor>> {
        self.bucketed("broadcast", tensors, |group, buckets| {
            group.collective("broadcast", buckets, |p, n, e| unsafe { tb_broadcast(group.raw, p, n, root as c_int, e) })
        })
    }

    /// Waits until every rank has reached this point.
    pub fn barrier(&self) -> Result<()> {
        let mut err = std::ptr::null_mut();
        // SAFETY: raw is live; err is set only on failure.
        if unsafe { tb_barrier(self.raw, &mut err) } != 0 {
            return Err(self.lost("a barrier", err));
        }
        Ok(())
    }

    /// Every rank's `values`, concatenated in rank order.
    pub fn all_gather_f64(&self, values: &[f64]) -> Result<Vec<f64>> {
        let mut counts = vec![0.0; self.world_size];
        counts[self.rank] = values.len() as f64;
        let counts: Vec<f64> = Vec::try_from(&self.all_reduce(&[Tensor::from_slice(&counts)], ReduceOp::Sum)?[0])?;
        let offset: usize = counts[..self.rank].iter().map(|c| *c as usize).sum();
        let total: usize = counts.iter().map(|c| *c as usize).sum();
        if total == 0 {
            return Ok(Vec::new()); // every rank sees this, so none waits
        }
        // Each rank fills its own span; the sum of the zeros elsewhere is the gather.
        let mut all = vec![0.0; total];
        all[offset..offset + values.len()].copy_from_slice(values);
        Ok(Vec::try_from(&self.all_reduce(&[Tensor::from_slice(&all)], ReduceOp::Sum)?[0])?)
    }

    /// Packs `tensors` into flat CPU buckets (one kind per bucket), runs
    /// `run` on the buckets, and unpacks the results.
    fn bucketed(&self, what: &str, tensors: &[Tensor], run: impl FnOnce(&Self, &mut [Tensor]) -> Result<()>) -> Result<Vec<Tensor>> {
        let _guard = tch::no_grad_guard();
        let mut buckets: Vec<(Kind, Vec<usize>, usize)> = Vec::new();
        for (i, t) in tensors.iter().enumerate() {
            if !t.defined() {
                bail!("{what}: tensor {i} is undefined");
            }
            let bytes = t.numel() * t.kind().elt_size_in_bytes();
            match buckets.last_mut() {
                Some((kind, members, size)) if *kind == t.kind() && *size + bytes <= BUCKET_BYTES => {
                    members.push(i);
                    *size += bytes;
                }
                _ => buckets.push((t.kind(), vec![i], bytes)),
            }
        }
        let mut flat: Vec<Tensor> = buckets
            .iter()
            .map(|(_, members, _)| {
                let parts: Vec<Tensor> = members.iter().map(|&i| tensors[i].detach().to_device(Device::Cpu).reshape([-1])).collect();
                Tensor::cat(&parts, 0).contiguous()
            })
            .collect();
        run(self, &mut flat)?;
        let mut out: Vec<Option<Tensor>> = (0..tensors.len()).map(|_| None).collect();
        for ((_, members, _), bucket) in buckets.iter().zip(&flat) {
            let mut start = 0i64;
            for &i in members {
                let t = &tensors[i];
                let n = t.numel() as i64;
                out[i] = Some(bucket.narrow(0, start, n).reshape(t.size()).to_device(t.device()));
                start += n;
            }
        }
        Ok(out.into_iter().map(|t| t.expect("every tensor is in a bucket")).collect())
    }
}

/// Sums the gradients of a set of parameters over the ranks while the
/// backward pass is still running, as PyTorch's DDP does: hooks copy each
/// gradient into a flat bucket (parameters in reverse order, as backward
/// produces them), and a bucket's all-reduce starts once the step's last
/// backward has filled it. Gradients of several backward passes in one step
/// (accumulation) add up in the buckets. The hooks are removed on drop.
pub struct OverlappedGradients {
    raw: *mut tb_overlap,
    group: &'static ProcessGroup,
    params: Vec<Tensor>,
    places: Vec<(usize, i64)>,
    buckets: usize,
}

impl Drop for OverlappedGradients {
    fn drop(&mut self) {
        // SAFETY: raw came from tb_overlap_new and is freed once.
        unsafe { tb_overlap_free(self.raw) };
    }
}

impl OverlappedGradients {
    /// Hooks `params` (trainable leaves) of the group's replica.
    pub fn new(group: &'static ProcessGroup, params: &[Tensor]) -> Result<OverlappedGradients> {
        let mut params: Vec<Tensor> = params.iter().map(Tensor::shallow_clone).collect();
        let ptrs: Vec<*mut torch_sys::C_tensor> = params.iter_mut().map(|t| t.as_mut_ptr()).collect();
        let mut err = std::ptr::null_mut();
        // SAFETY: the tensors are live for the call; the shim keeps its own references.
        let raw = unsafe { tb_overlap_new(group.raw, ptrs.as_ptr(), ptrs.len(), FIRST_BUCKET_BYTES as i64, BUCKET_BYTES as i64, &mut err) };
        if raw.is_null() {
            bail!("cannot set up the gradient buckets: {}", take_error(err));
        }
        let places = (0..params.len())
            .map(|i| {
                let (mut bucket, mut offset) = (0, 0);
                // SAFETY: i is within the parameters the shim was given.
                unsafe { tb_overlap_place(raw, i, &mut bucket, &mut offset) };
                (bucket as usize, offset)
            })
            .collect();
        // SAFETY: raw is live.
        let buckets = unsafe { tb_overlap_bucket_count(raw) };
        Ok(OverlappedGradients { raw, group, params, places, buckets })
    }

    /// True when these hooks are on exactly `params` (gradual unfreezing
    /// changes the trainable set, and then new hooks are needed).
    pub fn covers(&self, params: &[Tensor]) -> bool {
        self.params.len() == params.len() && self.params.iter().zip(params).all(|(a, b)| a.data_ptr() == b.data_ptr())
    }

    /// Starts an optimizer step: no gradients in the buckets yet.
    pub fn begin_step(&mut self) {
        // SAFETY: raw is live.
        unsafe { tb_overlap_begin_step(self.raw) };
    }

    /// Marks the next backward pass as this rank's last in the step, so
    /// that buckets are sent as soon as it fills them.
    pub fn last_backward(&mut self) {
        // SAFETY: raw is live.
        unsafe { tb_overlap_last_backward(self.raw) };
    }

    /// Sends what is left, waits for every bucket, and returns each
    /// parameter's summed gradient (on its device), and whether this rank
    /// had one for it. The gradients are views into the buckets: they are
    /// valid until the next step begins.
    pub fn finish(&mut self) -> Result<(Vec<Tensor>, Vec<bool>)> {
        let mut buckets: Vec<Tensor> = (0..self.buckets).map(|_| Tensor::new()).collect();
        let ptrs: Vec<*mut torch_sys::C_tensor> = buckets.iter_mut().map(|t| t.as_mut_ptr()).collect();
        let mut reported = vec![0u8; self.params.len()];
        let mut err = std::ptr::null_mut();
        // SAFETY: one output tensor per bucket, one flag per parameter.
        if unsafe { tb_overlap_finish(self.raw, ptrs.as_ptr(), ptrs.len(), reported.as_mut_ptr(), &mut err) } != 0 {
            return Err(self.group.lost("the gradient all-reduce", err));
        }
        let grads = self
            .params
            .iter()
            .zip(&self.places)
            .map(|(p, &(bucket, offset))| buckets[bucket].narrow(0, offset, p.numel() as i64).view(p.size().as_slice()).to_device(p.device()))
            .collect();
        Ok((grads, reported.into_iter().map(|r| r != 0).collect()))
    }
}

static GROUP: OnceLock<ProcessGroup> = OnceLock::new();

/// Joins the process group the environment describes, once per process;
/// `Ok(None)` for a single-process run.
pub fn init_from_env() -> Result<Option<&'static ProcessGroup>> {
    if let Some(g) = GROUP.get() {
        return Ok(Some(g));
    }
    let Some(launch) = LaunchEnv::from_env()? else { return Ok(None) };
    let group = ProcessGroup::join(&launch)?;
    Ok(Some(GROUP.get_or_init(|| group)))
}

/// The process group this process joined, if it is one of several.
pub fn current() -> Option<&'static ProcessGroup> {
    GROUP.get()
}

/// True unless this process is a rank other than 0 of a group: the one
/// process that writes checkpoints, logs and charts.
pub fn is_main_process() -> bool {
    current().is_none_or(|g| g.rank() == 0)
}

/// Runs `write` on the main process only, then waits for every rank, so
/// that no rank reads a file before it is complete; the other ranks get
/// `skipped()`. A single process just writes.
pub fn main_process_writes<T>(write: impl FnOnce() -> Result<T>, skipped: impl FnOnce() -> T) -> Result<T> {
    let Some(group) = current() else { return write() };
    // A failed write returns at once: the other ranks then lose rank 0 at
    // the barrier and stop too, rather than train on without its files.
    let out = if group.rank() == 0 { write()? } else { skipped() };
    group.barrier()?;
    Ok(out)
}

/// This rank's rows of one global batch: every `world_size`-th row,
/// starting at `rank`. Over the ranks the shards cover the batch exactly
/// once, so sharded training sees the same global batches as one process
/// (PyTorch's `DistributedSampler` strides the same way, but pads).
pub fn shard(rows: &[usize], rank: usize, world_size: usize) -> Vec<usize> {
    rows.iter().skip(rank).step_by(world_size.max(1)).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn shards_cover_every_row_once() {
        let rows: Vec<usize> = vec![9, 4, 7, 1, 0, 3, 8];
        for world in 1..=8 {
            let mut all: Vec<usize> = (0..world).flat_map(|r| shard(&rows, r, world)).collect();
            all.sort();
            let mut want = rows.clone();
            want.sort();
            assert_eq!(all, want, "world size {world}");
        }
        assert_eq!(shard(&rows, 1, 3), vec![4, 0]);
        assert_eq!(shard(&rows, 0, 3), vec![9, 1, 8]);
    }

    #[test]
    fn launch_environment_is_read_and_checked() {
        assert_eq!(LaunchEnv::from_lookup(env(&[])).unwrap(), None);
        assert_eq!(LaunchEnv::from_lookup(env(&[("WORLD_SIZE", "1")])).unwrap(), None);
        let l = LaunchEnv::from_lookup(env(&[("WORLD_SIZE", "2"), ("RANK", "1"), ("MASTER_ADDR", "10.0.0.1"), ("MASTER_PORT", "29500")])).unwrap().unwrap();
        assert_eq!((l.rank, l.world_size, l.local_rank, l.master_port, l.timeout), (1, 2, 0, 29500, DEFAULT_TIMEOUT));
        assert_eq!(l.agent_store_prefix, None);
        let torchrun = LaunchEnv::from_lookup(env(&[("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_ADDR", "a"), ("MASTER_PORT", "1"), ("TORCHELASTIC_USE_AGENT_STORE", "True"), ("TORCHELASTIC_RESTART_COUNT", "2")])).unwrap().unwrap();
        assert_eq!(torchrun.agent_store_prefix.as_deref(), Some("/worker/attempt_2"));
        let slurm = LaunchEnv::from_lookup(env(&[("SLURM_NTASKS", "4"), ("SLURM_PROCID", "3"), ("SLURM_LOCALID", "1"), ("MASTER_ADDR", "n1"), ("MASTER_PORT", "1234")])).unwrap().unwrap();
        assert_eq!((slurm.rank, slurm.world_size, slurm.local_rank), (3, 4, 1));
        let err = |pairs: &[(&str, &str)]| LaunchEnv::from_lookup(env(pairs)).unwrap_err().to_string();
        assert!(err(&[("WORLD_SIZE", "2"), ("MASTER_ADDR", "a"), ("MASTER_PORT", "1")]).contains("RANK is not set"));
        assert!(err(&[("WORLD_SIZE", "2"), ("RANK", "2"), ("MASTER_ADDR", "a"), ("MASTER_PORT", "1")]).contains("ranks run from 0 to 1"));
        assert!(err(&[("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_PORT", "1")]).contains("MASTER_ADDR is not set"));
        assert!(err(&[("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_ADDR", "a"), ("MASTER_PORT", "http")]).contains("not a port number"));
        assert!(err(&[("WORLD_SIZE", "two")]).contains("not a whole number"));
    }
}
