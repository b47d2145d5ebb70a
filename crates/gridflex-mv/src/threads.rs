//! Work spread over scoped threads.

/// Runs each task on its own scoped thread and returns their results in the tasks'
/// order. A task that panicked re-raises here: no result is silently lost.
pub(crate) fn each_on_a_thread<R: Send>(tasks: Vec<impl FnOnce() -> R + Send>) -> Vec<R> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = tasks.into_iter().map(|task| scope.spawn(task)).collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}
