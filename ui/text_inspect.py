"""Explanation texts for the inspection pages (Markdown, our own words, the notation of the seed documents).

Plain strings only: pages pass them to st.markdown. Never format user text into them (user text goes into figures
and tables as data)."""

ENCODER_INTRO = r"""
The **encoder** reads the input one token at a time. Each timestep t takes the token x_t (as its embedding vector)
and the previous hidden state h_{t-1}, and computes the new hidden state

$$h_t = f(x_t,\ h_{t-1}), \qquad h_0 = 0$$

So h_t is a running summary of x_1 … x_t, held in a fixed number of **hidden units** (the length of the vector).
The number of **timesteps** is simply the number of input tokens: a longer input means more steps, not more units.
"""

CELL_TEXT = {
    "rnn": """
**Vanilla RNN.** One formula: the pre-activation a_t = W_x x_t + W_h h_{t-1} + b (shown row "a_t pre-activation"),
then h_t = tanh(a_t). Every step squashes the whole state through tanh and multiplies by W_h again, which is why
information (and the gradient during training) fades over long inputs: the *vanishing gradient* problem.
""",
    "gru": """
**GRU.** Two gates decide how much of the old state survives (values between 0 and 1, Cividis scale):

- **r_t, reset gate**: how much of h_{t-1} is used when proposing the candidate;
- **n_t, candidate**: a proposed new state, n_t = tanh(W x_t + r_t ⊙ (U h_{t-1}) + b) (signed, RdBu scale);
- **z_t, update gate**: the mix, h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}. A unit with z ≈ 1 *keeps* its old value:
  that is how a GRU remembers across many timesteps.
""",
    "lstm": """
**LSTM.** Besides h_t it carries a **memory cell c_t**, updated by adding, not by squashing:

- **f_t, forget gate**: how much of c_{t-1} to keep (1 = keep everything);
- **i_t, input gate** and **g_t, candidate**: what to write, i_t ⊙ g_t;
- so **c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t**;
- **o_t, output gate**: how much of the cell to show, **h_t = o_t ⊙ tanh(c_t)**.

Because c_t changes by addition, information (and gradient) can flow across many timesteps when f_t ≈ 1.
""",
}

BIDIRECTIONAL = """
**Bidirectional encoder.** Two encoders read the same input: the **forward** one left to right (x_1 → x_T, blue)
and the **backward** one right to left (x_T → x_1, orange). At reading step k the forward direction is at x_k and
the backward one at x_{T-k+1}. Afterwards every timestep has two states, [h_t→ ; h_t←], so each position knows both
what came before it and what comes after it. A learned *bridge* mixes the two final states into the decoder's start
state: s_0 = tanh(W_b [h_T→ ; h_1←] + b).
"""

LAYERS = """
**Stacked layers.** Layer 1 reads the embeddings x_t; layer 2 reads layer 1's states h_t as its input, and so on.
Higher layers can build more abstract features. The context vector comes from the top layer.
"""

CONTEXT = """
**The context vector c.** After the last token, the encoder hands the decoder a summary of the whole input:
c = q(h_1, …, h_T). Here q takes the final state h_T of the top layer (through the bridge when the encoder is
bidirectional). Without attention, **c is all the decoder knows about the input** — every input, short or long,
must fit into these few numbers.
"""

STATES_INTRO = """
Each row of the heatmap is one hidden state h_t (one timestep, labelled with the token just read), each column one
**hidden unit**. Blue is positive, red negative, white zero. Look for units that switch on at particular tokens, or
that keep a value for many steps (memory). The **context vector c** below the heatmap is what the decoder starts from.
"""

PCA_TEXT = """
**Trajectories.** Every h_t is a point in a space with as many dimensions as hidden units. PCA finds the two
directions along which the states of many inputs vary most, and we draw each input's path h_1 → h_2 → … → h_T
in that plane (color = timestep, ✕ = the last state). Inputs that the model treats alike follow similar paths;
the axis labels say how much of the total variance the 2-D picture keeps (the rest is hidden from this view).
"""

COMPARE_TEXT = """
**Compare two inputs.** The cosine similarity of their context vectors, cos(c_A, c_B) = c_A·c_B / (|c_A| |c_B|),
is 1 when they point the same way, 0 when unrelated, −1 when opposite. Both heatmaps use the same color scale, so
equal colors mean equal values.
"""

DECODER_INTRO = r"""
The **decoder** writes the output one token at a time. Its state starts from the encoder's summary (s_0 from c) and
is updated from the token it produced last:

$$s_t = g(y_{t-1},\ c,\ s_{t-1}), \qquad y_0 = \langle \mathrm{sos} \rangle$$

With attention, c is replaced at every step by a fresh context c_t (see *Attention* below).

From s_t an output layer scores every token of the target vocabulary and a softmax turns the scores into the
**output distribution** p_t(y) = p(y_t = y | y_1 … y_{t-1}, x). It stops when it produces `<eos>`.
"""

STRATEGY_TEXT = {
    "greedy": "**Greedy**: always take the most probable token, y_t = argmax p_t. Fast and deterministic, but one "
    "early mistake cannot be undone.",
    "sample": "**Sampling**: draw y_t at random from p_t. *Temperature* T divides the scores before the softmax "
    "(T < 1 sharpens, T > 1 flattens); *top-k* keeps only the k most probable tokens. The seed makes a "
    "draw repeatable.",
    "beam": "**Beam search**: keep the k best partial outputs (the *beam*) at every step, scored by their total "
    "log-probability Σ log p_t(y_t). Each is extended by its k best next tokens, and only the k best of all "
    "candidates survive (blue); the rest are pruned (grey). Finished outputs end in `<eos>` (orange). The "
    "final ranking divides each score by its length.",
}

TEACHER_FORCING = r"""
**Teacher forcing and cross-entropy.** With a target y_1 … y_n we can score the model: at each step feed the *true*
previous token y_{t-1} (not the model's own guess) and measure how much probability the model gave the true next
token. The **cross-entropy** of one step is −log p_t(y_t): 0 when the model was certain and right, large when it
gave the right token little probability. The training loss is their mean over the steps (including `<eos>`):

$$\mathcal{L} = -\frac{1}{n} \sum_{t=1}^{n} \log p_t(y_t)$$
"""

NO_ATTENTION = """
**This model has no attention.** The decoder never looks back at the individual encoder states h_1 … h_T: all it
knows about the input is the single context vector c (its start state, also fed in at every step). That is the
**bottleneck** of the basic encoder-decoder: long inputs must be squeezed into a fixed number of hidden units.
Pick a model with attention in the sidebar to see attention weights.
"""

ATTENTION_TEXT = """
**Attention.** Before each output step the decoder compares its previous state s_{t-1} with every encoder state (a
*score* per source position), turns the scores into weights a_t1 … a_tT with a softmax (they sum to 1), and reads the
weighted average of the encoder states, the context c_t (not to be confused with an LSTM's memory cell). c_t goes into
the cell with y_{t-1}, s_t = g(y_{t-1}, c_t, s_{t-1}), and joins s_t again before the output layer. Bright cells
show where the model was "looking" while writing each output token.
"""

FORCE_TEXT = """
**Force a token.** Replace the decoder's choice at step t with a token of your own. Because the next state
s_{t+1} = g(y_t, c, s_t) (c_{t+1} with attention) is computed from that token, every later step can change: this shows how each output depends on
the ones before it (and why a single early mistake can derail greedy decoding).
"""
