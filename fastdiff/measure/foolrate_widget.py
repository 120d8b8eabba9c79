"""The fool-rate game's view in JupyterLab (ipywidgets): the low-res image in the centre, the two candidates left
and right, and three buttons; no keyboard needed. All logic lives in `fastdiff.measure.foolrate.FoolRateGame`; this
view only draws the game's state and turns clicks into ``start`` / ``choose`` calls. Displaying it returns at
once (papermill and nbval run past it); the display timer starts only when a player presses Start."""
from __future__ import annotations

import html
import io

from .foolrate import FoolRateGame
from .game_images import GameSources

PLACEHOLDER_GREY = (200, 200, 200)


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class FoolRateView:
    """Widgets for one `FoolRateGame`. Images are enlarged by nearest-neighbour to about ``display_px`` wide, so
    every browser shows the same pixels, with no smoothing that could favour either candidate. With ``reveal`` the
    status line tells the player after each answer which side was real."""

    def __init__(self, game: FoolRateGame, sources: GameSources, *, display_px: int = 256, reveal: bool = False):
        import ipywidgets as w
        if not isinstance(reveal, bool):   # the string "false" would be truthy: answers revealed against the protocol
            raise ValueError(f"reveal must be True or False, got {reveal!r}")
        self.game, self.sources, self.display_px, self.reveal = game, sources, display_px, reveal
        self.error: str | None = None
        first = sources.load("real", sources.names[0])
        self._zoom = max(1, display_px // first.width)
        self._size = (first.width * self._zoom, first.height * self._zoom)
        from PIL import Image
        self._blank = _png(Image.new("RGB", self._size, PLACEHOLDER_GREY))
        box = dict(width=f"{self._size[0]}px", height=f"{self._size[1]}px")

        def image(cls):
            im = w.Image(value=self._blank, format="png", layout=w.Layout(**box))
            im.add_class(cls)
            return im

        self.left, self.centre, self.right = image("fastdiff-left-image"), image("fastdiff-lr-image"), \
            image("fastdiff-right-image")
        self.title = w.HTML()
        self.status = w.HTML()
        self.button_left = w.Button(description="◀ Left is real", layout=w.Layout(width="160px"))
        self.button_next = w.Button(description="Start", button_style="primary", layout=w.Layout(width="160px"))
        self.button_right = w.Button(description="Right is real ▶", layout=w.Layout(width="160px"))
        for button, cls in [(self.button_left, "fastdiff-left"), (self.button_next, "fastdiff-next"),
                            (self.button_right, "fastdiff-right")]:
            button.add_class(cls)
        self.button_left.on_click(lambda _: self._choose("left"))
        self.button_right.on_click(lambda _: self._choose("right"))
        self.button_next.on_click(lambda _: self._start())

        def column(widget, caption):
            return w.VBox([widget, w.HTML(f"<center>{caption}</center>")], layout=w.Layout(margin="0 8px"))

        lr_caption = "low-res input" if sources.lr is not None else "(no low-res images given)"
        self.widget = w.VBox([
            self.title,
            w.HBox([column(self.left, "left"), column(self.centre, lr_caption), column(self.right, "right")]),
            w.HBox([self.button_left, self.button_next, self.button_right],
                   layout=w.Layout(justify_content="center", margin="8px 0")),
            self.status,
        ])
        self.widget.add_class("fastdiff-fool-rate-game")
        game.on_change(lambda _: self.render())
        self.render()

    # -- events: an error (the answers file went away, the session was opened elsewhere) is shown to the player
    # in the status line and stops the game, rather than vanishing into the kernel's log
    def _start(self) -> None:
        self._guard(lambda: self.game.start() if self.game.state == "ready" else None)

    def _choose(self, side: str) -> None:
        self._guard(lambda: self.game.choose(side) if self.game.can_choose else None)

    def _guard(self, action) -> None:
        try:
            action()
            self.error = None
        except Exception as e:  # noqa: BLE001  (shown to the player, the game does not go on)
            self.error = f"{type(e).__name__}: {e}"
            self.render()

    # -- drawing
    def _shown(self, kind: str, name: str, model: str | None = None) -> bytes:
        return _png(self.sources.load(kind, name, model).resize(self._size, resample=0))  # 0: nearest

    def render(self) -> None:
        game, trial = self.game, self.game.trial
        total = len(game.trials)
        shown_number = min(game.n_answered + (game.state in ("showing", "hidden")), total)
        self.title.value = (f"<b>Fool-rate game</b> · trial {max(shown_number, 1)} of {total} · "
                            f"player <code>{html.escape(game.player)}</code> · session "
                            f"<code>{html.escape(game.session)}</code>")
        if game.state == "showing":
            real = self._shown("real", trial.image_id)
            fake = self._shown("generated", trial.image_id, trial.model)
            self.left.value, self.right.value = (real, fake) if trial.real_side == "left" else (fake, real)
            self.centre.value = self._shown("lr", trial.image_id) if self.sources.lr is not None else self._blank
        else:
            self.left.value = self.right.value = self._blank
            if game.state != "hidden":
                self.centre.value = self._blank
        choosing = game.can_choose
        self.button_left.disabled = self.button_right.disabled = not choosing
        self.button_next.disabled = game.state != "ready"
        self.button_next.description = "Start" if game.n_answered == 0 else "Next pair"
        self.status.value = self._status()
        if self.error:
            self.button_left.disabled = self.button_right.disabled = self.button_next.disabled = True
            self.status.value = f"<span style='color:#b00020'><b>The game stopped:</b> {html.escape(self.error)}</span>"

    def _status(self) -> str:
        game = self.game
        if game.state == "showing":
            return f"Look closely: the two candidates are shown for {game.show_s:g} s."
        if game.state == "hidden":
            return "<b>Which one was the real image?</b>"
        last = game.last_record
        said = ""
        if last is not None:
            said = f"Answer {game.n_answered} recorded"
            if self.reveal:
                said += f" (the real one was on the {last['real_side']}; " \
                        f"{'you were fooled' if last['fooled'] else 'correct'})"
            said += ". "
        if game.state == "finished":
            return f"{said}Session finished: {game.n_answered} answers in <code>{html.escape(str(game.log.path))}</code>."
        if game.n_answered and last is None:
            return f"Resuming session {html.escape(game.session)}: {game.n_answered} of {len(game.trials)} trials " \
                   f"already answered. Press Next pair."
        return said + ("Press Start when the player is ready." if game.n_answered == 0 else "Press Next pair.")

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)
