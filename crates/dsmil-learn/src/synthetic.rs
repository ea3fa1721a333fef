//! Synthetic task worlds for benchmarks and demonstrations: agents with hidden per-topic skill
//! and speed, and tasks as text drawn from topic vocabularies.
//!
//! Each topic has concepts, each concept a few synonyms (paraphrase); a task is 5–9 concept
//! words of one topic plus up to 3 off-topic noise words. Everything is deterministic in the
//! seed.

use dsmil_core::AgentId;

/// A small deterministic generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// A pronounceable pseudo-word.
fn word(rng: &mut Rng) -> String {
    const C: &[u8] = b"bcdfghklmnprstvz";
    const V: &[u8] = b"aeiou";
    (0..2 + rng.below(2))
        .flat_map(|_| [C[rng.below(C.len())] as char, V[rng.below(V.len())] as char])
        .collect()
}

/// A world: topics, agents and their hidden skills.
#[derive(Debug, Clone)]
pub struct World {
    /// Per topic: concepts, each a few synonyms.
    vocab: Vec<Vec<Vec<String>>>,
    noise: Vec<String>,
    /// `skill[agent][topic]`: probability of success.
    pub skill: Vec<Vec<f64>>,
    /// Wall time of each agent's runs.
    pub speed_ms: Vec<u64>,
}

/// One generated task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Its hidden topic.
    pub topic: usize,
    /// Its text.
    pub text: String,
}

impl World {
    /// A world of `topics` topics and `agents` agents; each agent is strong (0.75–0.95) on
    /// two topics and middling to weak (0.15–0.6) elsewhere.
    pub fn new(rng: &mut Rng, topics: usize, agents: usize) -> Self {
        let vocab = (0..topics)
            .map(|_| {
                (0..12)
                    .map(|_| (0..3).map(|_| word(rng)).collect())
                    .collect()
            })
            .collect();
        let noise = (0..60).map(|_| word(rng)).collect();
        let skill = (0..agents)
            .map(|a| {
                (0..topics)
                    .map(|t| {
                        if t % agents == a || (t + 3) % agents == a {
                            0.75 + 0.2 * rng.unit()
                        } else {
                            0.15 + 0.45 * rng.unit()
                        }
                    })
                    .collect()
            })
            .collect();
        let speed_ms = (0..agents).map(|_| 50 + rng.below(400) as u64).collect();
        Self {
            vocab,
            noise,
            skill,
            speed_ms,
        }
    }

    /// Number of topics.
    pub fn topics(&self) -> usize {
        self.vocab.len()
    }

    /// Number of agents.
    pub fn agents(&self) -> usize {
        self.skill.len()
    }

    /// The id of agent `a` (`agent-{a}`).
    pub fn agent_id(a: usize) -> AgentId {
        AgentId::new(format!("agent-{a}")).expect("agent-N is a valid agent id")
    }

    /// A random task.
    pub fn task(&self, rng: &mut Rng) -> Task {
        let topic = rng.below(self.topics());
        let mut words: Vec<&str> = Vec::new();
        for _ in 0..5 + rng.below(5) {
            let concept = &self.vocab[topic][rng.below(12)];
            words.push(&concept[rng.below(concept.len())]);
        }
        for _ in 0..rng.below(4) {
            words.push(&self.noise[rng.below(self.noise.len())]);
        }
        Task {
            topic,
            text: words.join(" "),
        }
    }

    /// The best agent for `topic` and its skill.
    pub fn best_for(&self, topic: usize) -> (usize, f64) {
        (0..self.agents())
            .map(|a| (a, self.skill[a][topic]))
            .fold((0, f64::MIN), |best, x| if x.1 > best.1 { x } else { best })
    }
}
