"""Explanation panels, in our own words, with the notation used everywhere in the app:
x_t source token at timestep t, h_t encoder hidden state, c context vector, s_t decoder state, y_t target token,
p_t output distribution, a_t attention weights. Markdown with LaTeX; never mixed with user text.
"""

DATA = r"""
**From text to numbers.** The model never sees letters or words, only whole numbers. We first cut each text into
**tokens** (here one token per character, or per word for the translation task), then look each token up in a
**vocabulary** that gives it an **id**. Four ids are reserved: `<pad>` = 0, `<sos>` = 1 (start of sequence),
`<eos>` = 2 (end of sequence) and `<unk>` = 3 (a token the vocabulary has never seen).

**One token per timestep.** The encoder reads the source $x_1, x_2, \dots, x_T$ one token per **timestep** $t$.
So the number of timesteps is the *length of the sequence*. It has nothing to do with the number of hidden units,
which is the size of the vector $h_t$ the encoder carries from one timestep to the next (see the Model page).

**The decoder's two views of the target.** During training the decoder gets $\langle sos\rangle, y_1, \dots, y_{n}$ as
input and must predict $y_1, \dots, y_n, \langle eos\rangle$: the same sequence shifted by one timestep. `<eos>` is how
the model learns to stop.

**Padding and truncation.** Examples are trained in batches, and a batch is a rectangle: shorter sequences are filled
up with `<pad>` to the length of the longest one, and a mask makes sure padding never counts in the loss. Sequences
longer than the **maximum length** are cut (truncated) to it; the histogram shows how many examples lose tokens.
"""

MODEL = r"""
**Encoder.** At each timestep $t$ the encoder combines the embedding of token $x_t$ with its previous state:
$h_t = f(x_t, h_{t-1})$, where $f$ is a vanilla RNN (tanh), a GRU or an LSTM cell. Its final state(s) become the
**context vector** $c = q(h_1, \dots, h_T)$ - here simply the last state, passed through a small *bridge* layer when
the encoder is bidirectional (then $h_t = [\overrightarrow{h}_t; \overleftarrow{h}_t]$ reads the input both ways).

**Decoder.** The decoder starts from $c$ and updates its own state $s_t = g(y_{t-1}, c, s_{t-1})$ one output token at a
time. From $s_t$ an output layer and a softmax give the distribution $p_t = P(y_t \mid y_1, \dots, y_{t-1}, c)$ over
the target vocabulary.

**Attention** (optional) lets each decoder step look back at *every* $h_j$, not only at $c$. Before step $t$ the
decoder compares its previous state with each of them: the weights $a_t = \mathrm{softmax}_j(\mathrm{score}(s_{t-1}, h_j))$
say where it looks, and their weighted sum $c_t = \sum_j a_{tj} h_j$ is a fresh context for this step, fed into the cell
in place of $c$: $s_t = g(y_{t-1}, c_t, s_{t-1})$. $c_t$ joins $s_t$ once more before the output layer. Because $c_t$
goes *into* the cell, the decoder remembers where it looked last, which keeps it from losing its place when a token
repeats. *Additive* (Bahdanau) scores with a small network; *dot* (Luong) with a dot product
$s_{t-1} \cdot h_j / \sqrt{H}$ (divided by $\sqrt{H}$ so that, with many hidden units, the scores do not start out so
large that the softmax picks one position before the model has learned which).

**Hidden units vs timesteps.** *Hidden units* $H$ is the length of each state vector $h_t$ and $s_t$ - the model's
memory size, fixed when you build it. *Timesteps* is how many tokens a sequence has - it changes with every input.
A model with 128 hidden units reads a 5-token and a 50-token input alike: 5 or 50 timesteps of a 128-number state.
*Layers* stack cells: layer 2 reads the states of layer 1 as its inputs.
"""

TRAIN = r"""
**Training** shows the model many (source, target) pairs. For each pair the decoder is fed the true previous token
$y_{t-1}$ (*teacher forcing*) and we measure how much probability $p_t$ gave the true token $y_t$ with the
**cross-entropy** $\;\mathcal{L} = -\frac{1}{n}\sum_t \log p_t(y_t)$. The optimizer (Adam, RMSprop or SGD) nudges every
weight against its gradient, a batch at a time; one **epoch** is one pass over the training set.

**Curves.** *Training loss* is measured on the batches being learned; *validation loss* and **exact match** (the share
of held-out inputs whose whole output is right) on examples the model never trains on. When training loss keeps
falling but validation loss rises, the model is memorizing (overfitting). The training loss jumps from batch to batch
because each batch holds inputs of about one length (less padding to compute, so faster steps) and long inputs are
harder; the validation loss, measured on the same examples every time, is the steady line to judge progress by.

**Learning rate.** Too small and learning crawls; too large and the steps overshoot (the loss jumps, or explodes).
The default keeps it *constant*; the *plateau* schedule halves the rate whenever the validation loss has stopped
improving, so the weights can settle, but on a noisy validation loss it can halve too early and stall (it did on
uniform 3-digit addition). By default a run trains **until it stops improving**: it ends after 10 evaluations in a
row with neither a better exact match nor a lower validation loss.

**Vanishing and exploding gradients.** The gradient reaching an early timestep $h_1$ has been multiplied by one
factor per later timestep. Factors below 1 make it shrink towards zero (*vanishing*: the model cannot learn long-range
dependencies, typical of the vanilla RNN); factors above 1 make it blow up (*exploding*: the loss jumps or becomes
NaN). The per-timestep chart shows $\lVert \partial \mathcal{L} / \partial h_t \rVert$ on a log scale; LSTM and GRU
gates, gradient **clipping** and attention all keep it healthy.
"""

DIVERGED = (
    "The loss became NaN or infinite, so training stopped. The learning rate is probably too high "
    "(or gradient clipping is off): lower the learning rate, set clipping to 1, and start again."
)


def md_escape(s: str) -> str:
    """User text inside st.markdown / st.caption: every markdown control character backslash-escaped, so a token
    like "##." or "*" is shown as it is (never a heading, emphasis or a link)."""
    return "".join("\\" + c if c in "\\`*_{}[]()#+-.!|<>~$" else c for c in s)
