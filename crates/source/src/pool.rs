//! A bounded pool of decoder threads, shared by the files a CSV source decodes at once.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Work for a thread of the pool: decoding one file to its end, or until nobody wants the
/// rest.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// Threads that decode files for one source, started as they are first needed and reused
/// from file to file. A file holds a thread until it is decoded or its reader is dropped
/// (its job then ends at its next send). The source never has more files decoding on threads
/// than the pool has threads (the one being read and those decoding ahead), so a file never
/// waits for a thread that a file read after it holds.
pub(crate) struct DecoderPool {
    size: usize,
    jobs: Option<Sender<Job>>,
    queue: Arc<Mutex<Receiver<Job>>>,
    pub(crate) threads: Vec<JoinHandle<()>>,
}

impl DecoderPool {
    /// A pool of at most `size` threads (at least one); none is started yet.
    pub(crate) fn new(size: usize) -> DecoderPool {
        let (jobs, queue) = channel();
        DecoderPool {
            size: size.max(1),
            jobs: Some(jobs),
            queue: Arc::new(Mutex::new(queue)),
            threads: Vec::new(),
        }
    }

    /// How many files may decode on the pool's threads at once.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Runs `job` on a thread of the pool, starting a thread if fewer than `size` exist.
    pub(crate) fn run(&mut self, job: Job) -> std::io::Result<()> {
        if self.threads.len() < self.size {
            let queue = self.queue.clone();
            let thread = std::thread::Builder::new()
                .name("weir-csv-decode".into())
                .spawn(move || loop {
                    // The lock is held only to take a job, never while running one.
                    let next = queue.lock().map(|q| q.recv());
                    match next {
                        Ok(Ok(job)) => job(),
                        // The pool is gone (or a thread panicked holding the lock).
                        _ => return,
                    }
                })?;
            self.threads.push(thread);
        }
        match &self.jobs {
            Some(jobs) => jobs
                .send(job)
                .map_err(|_| std::io::Error::other("the decoder pool has stopped")),
            None => Err(std::io::Error::other("the decoder pool has stopped")),
        }
    }
}

impl Drop for DecoderPool {
    /// Waits for the threads to end: a dropped source leaves no thread (nor its buffers)
    /// behind it. The files they decode must be dropped first, so that their jobs end.
    fn drop(&mut self) {
        drop(self.jobs.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn runs_every_job_on_at_most_its_size_of_threads() {
        let done = Arc::new(AtomicUsize::new(0));
        let names = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
        let mut pool = DecoderPool::new(3);
        for _ in 0..50 {
            let (done, names) = (done.clone(), names.clone());
            pool.run(Box::new(move || {
                let id = std::thread::current().id();
                names.lock().unwrap().insert(format!("{id:?}"));
                done.fetch_add(1, Ordering::SeqCst);
            }))
            .unwrap();
        }
        drop(pool);
        assert_eq!(done.load(Ordering::SeqCst), 50);
        let threads = names.lock().unwrap().len();
        assert!((1..=3).contains(&threads), "{threads} threads");
    }
}
